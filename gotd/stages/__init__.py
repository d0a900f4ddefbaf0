"""The workflow stages, each written once and run by every front door (CLI, notebooks, ``gotd run``).

Named like the stages of the run configs (``gotd/configs/*.yaml``). Today: ``select``
(:func:`select_stage`: texts -> chunks -> embeddings -> selections -> files with sidecars), used by
``gotd select``, ``gotd demo`` and notebook ``01_select`` (which ``gotd run`` executes as its ``select``
stage). :data:`PARAMETER_CHECKS` maps a notebook to the stage's own parameter checks, which ``gotd run``
applies to every point at plan time.
"""
from gotd.selectors import available_methods, methods_taking
from gotd.selectors._validation import INPUT_KINDS
from gotd.stages._registry import selector_specs
from gotd.stages._select import SelectResult, check_select_parameters, encoder_for, select_stage, selection_outputs

PARAMETER_CHECKS = {"01_select": check_select_parameters}
"""Notebook stem -> the stage's check of its parameters (raises :class:`gotd.errors.GotdInputError`)."""

__all__ = ["INPUT_KINDS", "PARAMETER_CHECKS", "SelectResult", "available_methods", "check_select_parameters",
           "encoder_for", "methods_taking", "select_stage", "selection_outputs", "selector_specs"]
