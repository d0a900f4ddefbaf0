"""Moved: ``gotd demo`` is now ``gotd select-demo``, :mod:`gotd.select_demo`; its old names are re-exported here.

"demo" names one thing in gotd: the main job, ``gotd run demo``.
"""
from gotd.select_demo import RECORD_FILE
from gotd.select_demo import SELECT_DEMO_TARGET as DEMO_TARGET
from gotd.select_demo import run_select_demo as run_demo
from gotd.select_demo import select_demo_methods as demo_methods

__all__ = ["DEMO_TARGET", "RECORD_FILE", "demo_methods", "run_demo"]
