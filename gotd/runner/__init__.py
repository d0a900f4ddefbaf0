"""``gotd run`` and the pieces behind it: the run (:mod:`~gotd.runner.run`), configuration, grid, execution,
the run folders notebooks write (:mod:`~gotd.runner.rundir`), collection and the report (rendered from the
compare stage's files, :mod:`gotd.stages.compare`)."""
