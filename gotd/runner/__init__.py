"""The pieces behind ``gotd run`` (see :mod:`gotd.run`): configuration, grid, execution, collection, report."""
