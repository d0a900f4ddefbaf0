"""Exceptions raised by gotd for bad input.

Every message names what is wrong (the file, row or argument) and how to fix it, so that the
command line can print it as one line instead of a traceback.
"""
from __future__ import annotations


class GotdError(Exception):
    """Base class of the errors gotd raises on purpose."""


class GotdInputError(GotdError, ValueError):
    """Input data or arguments that gotd cannot use (missing file, empty texts, wrong shapes...)."""


class GotdConvergenceError(GotdError, RuntimeError):
    """An iterative solve stopped without meeting its tolerance, or diverged.

    Raised instead of returning a result computed from unconverged or blown-up potentials; pass
    ``allow_unconverged=True`` (CLI: ``--allow-unconverged``) to get such a result anyway, recorded as
    unconverged in its diagnostics.
    """
