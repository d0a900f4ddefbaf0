"""The ``select`` stage, written once: texts -> chunks -> embeddings -> selections -> files with sidecars.

Two layers. :func:`select_all` is pure and in memory: prepared frames (and embeddings) in, every method at
every budget out, ``{(method, budget): Selection}``; nothing is read or written. :func:`select_stage` is
the file-writing stage around it, and every front door runs it: ``gotd select`` (one method, one output
file), ``gotd select-demo`` (every method into a folder), notebook ``01_select`` (and through it the
``select`` stage of ``gotd run``). The testbed calls :func:`select_all` and saves each selection with
:func:`gotd.selection.save_selection` like any other. The steps of :func:`select_stage`, in order::

    load      pool and target by name or path (gotd.stages.inputs), chunked / packed to chunk_chars characters
    check     methods known to the registry, outputs not among the inputs, pool size, duplicates counted
              (said once, by the loader that made the pool: gotd.stages.inputs.prepare_pool)
    embed     once, only when a method reads embeddings (or the caller asks for them), cached on disk
    select    each method reads what the registry says it reads (embeddings, texts or nothing)
    write     <out>/<method>.jsonl (or the file named for it) plus its JSON sidecar, atomically

A solve that did not converge writes no file (:class:`gotd.errors.GotdConvergenceError`) unless
``allow_unconverged=True``; the sidecar then says so. The sidecar's ``extra`` records the inputs, the
encoder settings (for methods that used embeddings), the preset and ``n_exact_duplicates``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gotd._params import ParameterObject
from gotd.errors import GotdConvergenceError, GotdInputError
from gotd.outputs import check_file_output
from gotd.selection import SIDECAR_SUFFIX, Selection, save_selection
from gotd.data import count_exact_duplicates
from gotd.stages._registry import accepts, selector_specs
from gotd.stages.inputs import pool_duplicates_note

__all__ = ["SelectConfig", "SelectResult", "check_select_parameters", "encoder_for", "select_all", "select_stage", "selection_outputs"]

PathLike = str | os.PathLike[str]


@dataclass
class SelectResult:
    """What :func:`select_stage` produced.

    Attributes
    ----------
    pool, target : pandas.DataFrame
        The chunked pool and the packed target the methods saw (``id``, ``text``, ...).
    selections : dict of str to Selection
        Each method's ranked selection, in the order asked.
    paths : dict of str to Path
        The selection file written for each method (its sidecar is ``<path>.json``).
    embeddings : tuple of numpy.ndarray, optional
        ``(pool, target)`` float32 embeddings when a method read them (or ``embed=True``); else None.
    encoder_settings : dict
        The encoder's settings when embeddings were computed, else ``{}``.
    n_exact_duplicates : int
        Pool rows whose text equals an earlier row's (kept: they can be selected twice).
    unconverged : list of str
        Methods whose OT solve did not meet its tolerance (only with ``allow_unconverged=True``).
    """

    pool: pd.DataFrame
    target: pd.DataFrame
    selections: dict[str, Selection] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    embeddings: tuple[np.ndarray, np.ndarray] | None = None
    encoder_settings: dict[str, Any] = field(default_factory=dict)
    n_exact_duplicates: int = 0
    unconverged: list[str] = field(default_factory=list)


def encoder_for(model: str = "minilm", *, preset: str | None = None, **options: Any) -> Any:
    """The stage's encoder: ``options`` given explicitly (not None) win over the preset's encoder options.

    ``preset="paper"`` sets the paper's pooling (mean over all positions, padding included) and no L2
    normalisation (:func:`gotd.presets.preset_options`); ``pooling=...`` given here still wins.
    """
    from gotd.embed import Encoder
    from gotd.presets import preset_options

    chosen = {**preset_options(preset or None, "encoder"), **{k: v for k, v in options.items() if v is not None}}
    return Encoder(model, **chosen)


def selection_outputs(methods: Sequence[str], out: PathLike | Mapping[str, PathLike]) -> dict[str, Path]:
    """The file each method's selection goes to: ``<out>/<method>.jsonl`` for a folder, or ``out[method]``."""
    if isinstance(out, Mapping):
        missing = [m for m in methods if m not in out]
        if missing:
            raise GotdInputError(f"no output file given for method(s) {', '.join(missing)}; name one per method")
        return {m: Path(out[m]) for m in methods}
    folder = Path(out)
    if folder.is_file():
        raise GotdInputError(f"output folder {folder} is a file; give a folder for the selections of "
                             f"{', '.join(methods)}")
    return {m: folder / f"{m}.jsonl" for m in methods}


def check_select_parameters(parameters: Mapping[str, Any]) -> None:
    """The stage's own checks of its knobs, run before anything is loaded (also by ``gotd run`` at plan time).

    Checks the keys it knows when present: ``budget`` (int >= 1), ``methods`` (registered names),
    ``chunk_chars`` (int >= 0), ``seed`` (int >= 0), ``eps``/``eps_rel``/``tol`` (finite and > 0),
    ``max_iter`` (int >= 1), ``preset`` (a known preset or empty).

    Raises
    ------
    GotdInputError
        Naming the parameter, its value and what it must be.
    """
    def bad(key: str, rule: str) -> GotdInputError:
        return GotdInputError(f"{key}={parameters[key]!r}: must be {rule}")

    def is_int(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    for key, low in (("budget", 1), ("max_iter", 1), ("chunk_chars", 0), ("seed", 0)):
        value = parameters.get(key)
        if value is not None and not (is_int(value) and value >= low):
            raise bad(key, f"an integer >= {low}")
    for key in ("eps", "eps_rel", "tol"):
        value = parameters.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise bad(key, "a finite number > 0 (e.g. eps_rel=0.05)")
    if parameters.get("methods") is not None:
        selector_specs(list(parameters["methods"]) if not isinstance(parameters["methods"], str)
                       else parameters["methods"])
    if parameters.get("preset"):
        from gotd.presets import preset_options

        preset_options(str(parameters["preset"]), "encoder")


@dataclass(frozen=True)
class SelectConfig(ParameterObject):
    """What :func:`select_stage` selects and how: the methods and their options.

    Attributes
    ----------
    methods : sequence of str
        Registered selection methods; what each reads comes from the selector registry.
    seed : int
        Seed of every random choice.
    preset : str, optional
        A :mod:`gotd.presets` name (``"paper"``): its encoder options (when no encoder is given) and its OT
        options under ``ot_options``; recorded in every sidecar.
    options : mapping, optional
        Options passed to every method (a method without such an option is an error).
    ot_options : mapping, optional
        Options passed only to the methods that take OT options (``eps_rel``: entropic regularisation as a
        multiple of the cost's standard deviation; ``tol``: the L1 marginal error the solve stops below).
    allow_unconverged : bool
        Keep (and write) a selection whose OT solve stopped above its tolerance; the sidecar says so.
    """

    methods: Sequence[str] = ("gotd",)
    seed: int = 0
    preset: str | None = None
    options: Mapping[str, Any] | None = None
    ot_options: Mapping[str, Any] | None = None
    allow_unconverged: bool = False


def select_stage(
    pool: PathLike | pd.DataFrame,
    target: PathLike | pd.DataFrame,
    budget: int,
    config: SelectConfig | None = None,
    *,
    out: PathLike | Mapping[str, PathLike],
    encoder: Any = None,
    cache_dir: PathLike | None = None,
    shard_size: int | None = None,
    embed: bool = False,
    record: Mapping[str, Any] | None = None,
    load: Mapping[str, Any] | None = None,
    progress: bool = True,
    log: Any = None,
    **settings: Any,
) -> SelectResult:
    """Load, embed once, select with every method, write each selection and its sidecar.

    Parameters
    ----------
    pool, target : str, path or pandas.DataFrame
        A name or path for :func:`gotd.stages.inputs.load_pool` / :func:`~gotd.stages.inputs.load_target` (chunked and
        packed there; ``load`` passes their keywords), or frames already prepared (``id``, ``text``).
    budget : int
        Pool rows each method selects.
    config : SelectConfig, optional
        Methods, seed, preset and the methods' options (default: :class:`SelectConfig`'s).
    out : path or mapping of method to path
        A folder (``<out>/<method>.jsonl``) or one file per method (``.jsonl``, ``.parquet``, ``.csv``).
    encoder : gotd.embed.Encoder or mapping, optional
        An encoder, or the keywords of :func:`encoder_for` (None values: not given, so the preset's or the
        default applies); built only when embeddings are needed. Default: :func:`encoder_for` with ``preset``.
    cache_dir : path, optional
        Embedding cache folder (None: no cache).
    shard_size : int, optional
        Texts per cache shard: an interrupted embedding resumes from the last finished shard (None: the
        encoder's default).
    embed : bool
        Compute the embeddings even when no method reads them (for analysis after the selection).
    record : mapping, optional
        More facts for the sidecar's ``inputs`` record (task name, split, ...).
    load : mapping, optional
        Keywords of the loaders when ``pool``/``target`` are names or paths (``text_field``, ``chunk_chars``,
        ``dedup``, ``data_dir``, ``smoke``...; a ``target_`` prefix for the target's own).
    progress : bool
        Progress bars of the chunking, the encoder and the selectors.
    log : callable, optional
        Receives one-line notes for the user (duplicates, unconverged solves); default: nothing.
    settings
        :class:`SelectConfig` fields by name (``methods=[...]``, ``seed=1``); they override ``config``'s.

    Raises
    ------
    GotdInputError
        Unknown method, an output that is one of the inputs, a pool too small for a method, bad options.
    GotdConvergenceError
        A method's OT solve did not converge and ``allow_unconverged`` is False (no file is written for it).
    """
    from gotd.presets import preset_options

    cfg = SelectConfig.resolve(config, settings)
    specs = selector_specs(list(cfg.methods))
    paths = selection_outputs(list(specs), out)
    named = {"pool": pool, "target": target}
    for path in paths.values():  # not an input, not in a built data set, writable: before loading and embedding
        check_file_output(path, inputs={k: v for k, v in named.items() if not isinstance(v, pd.DataFrame)},
                          record_suffix=SIDECAR_SUFFIX)
    pool_df, target_df = _load(pool, target, dict(load or {}), progress)
    if log is not None and not (isinstance(pool, pd.DataFrame) and isinstance(target, pd.DataFrame)):
        # frames handed in are the caller's, who has said their sizes (01_select prints them); names loaded here not
        log(f"pool: {len(pool_df)} chunks from {_name(pool)}; target: {len(target_df)} texts from {_name(target)}")
    result = SelectResult(pool=pool_df, target=target_df, n_exact_duplicates=count_exact_duplicates(
        pool_df["text"].tolist()))
    removed = pool_df.attrs.get("duplicates_removed")  # None: no dedup asked for
    if "exact_duplicates" not in pool_df.attrs:
        # a frame not made by gotd.stages.inputs.prepare_pool, which says the duplicates of the frames it makes
        note = pool_duplicates_note(result.n_exact_duplicates, len(pool_df), unit="rows")
        if note and log is not None:
            log(note)
    _check_pool_size(pool, pool_df, specs)

    if embed or any(spec.inputs == "embeddings" for spec in specs.values()):
        if encoder is None or isinstance(encoder, Mapping):
            encoder = encoder_for(preset=cfg.preset, **dict(encoder or {}))
        extra = {} if shard_size is None else {"shard_size": shard_size}
        result.embeddings = (encoder.encode(pool_df["text"].tolist(), cache_dir=cache_dir, progress=progress, **extra),
                             encoder.encode(target_df["text"].tolist(), cache_dir=cache_dir, progress=progress,
                                            **extra))
        result.encoder_settings = encoder.settings()
    solver = {**preset_options(cfg.preset or None, "ot"), **dict(cfg.ot_options or {})}
    if cfg.allow_unconverged:
        solver["allow_unconverged"] = True
    inputs_record = {"pool": _name(pool), "target": _name(target), "pool_rows": len(pool_df),
                     "target_rows": len(target_df), **dict(record or {})}
    for method, spec in specs.items():
        selection = select_all(result.pool, result.target, methods=[method], budgets=[budget], seed=cfg.seed,
                               embeddings=result.embeddings, options=cfg.options, solver=solver,
                               progress=progress)[(method, int(budget))]
        converged = selection.diagnostics.get("converged")
        if converged is False:
            if not cfg.allow_unconverged:
                raise GotdConvergenceError(_unconverged_message(method, selection.diagnostics))
            result.unconverged.append(method)
            if log is not None:
                log(f"{method}: {_unconverged_message(method, selection.diagnostics, allowed=True)}")
        extra = {"encoder": result.encoder_settings if spec.inputs == "embeddings" else {},
                 "inputs": inputs_record, "preset": cfg.preset or None,
                 "n_exact_duplicates": result.n_exact_duplicates, "n_duplicates_removed": removed,
                 "converged": None if converged is None else bool(converged)}
        result.paths[method] = save_selection(selection, paths[method], records=pool_df, extra=extra)
        result.selections[method] = selection
    return result


def select_all(pool: pd.DataFrame, target: pd.DataFrame, *, methods: Sequence[str], budgets: Sequence[int],
               seed: int = 0, embeddings: tuple[np.ndarray, np.ndarray] | None = None,
               options: Mapping[str, Any] | None = None, solver: Mapping[str, Any] | None = None,
               progress: bool = True, method_options: Mapping[str, Mapping[str, Any]] | None = None
               ) -> dict[tuple[str, int], Selection]:
    """Every method at every budget on prepared frames, in memory: ``{(method, budget): Selection}``.

    Pure: reads no file and writes none. Each method reads what the selector registry says it reads (the
    ``text`` columns, the ``(pool, target)`` embeddings, or nothing); the order is methods first, then
    budgets, as given.

    Parameters
    ----------
    pool, target : pandas.DataFrame
        Prepared frames with a ``text`` column (:mod:`gotd.stages.inputs`).
    methods : sequence of str
        Registered method names (an unknown name fails before any work).
    budgets : sequence of int
        Pool rows to select, each >= 1.
    seed : int
        Seed of every random choice.
    embeddings : (numpy.ndarray, numpy.ndarray), optional
        Pool and target embeddings; required when a method reads embeddings.
    options : mapping, optional
        Options passed to every method.
    solver : mapping, optional
        OT options passed only to the methods that take them (``eps_rel``, ``tol``, ``allow_unconverged``...).
    progress : bool
        Progress bars of the selectors that show one.
    method_options : mapping of str to mapping, optional
        Options of one method only (e.g. ``{"dsir": {"min_length": 10}}``), over ``options``.

    Raises
    ------
    GotdConvergenceError
        A method's OT solve did not converge (naming the method and the fix).
    """
    from gotd.selectors import inputs_for, run_selector

    specs = selector_specs(list(methods))
    texts = (pool["text"].tolist(), target["text"].tolist())
    out: dict[tuple[str, int], Selection] = {}
    for method, spec in specs.items():
        inputs = inputs_for(spec.name, texts=texts, embeddings=embeddings)
        kwargs = {**dict(options or {}), **dict((method_options or {}).get(method, {}))}
        if spec.progress:  # the registry checked that such a selector takes progress=
            kwargs.setdefault("progress", progress)
        if accepts(spec.fn, "eps_rel"):  # the OT-based selectors forward solver options
            kwargs = {**dict(solver or {}), **kwargs}
        for budget in budgets:
            try:
                out[(method, int(budget))] = run_selector(inputs[0], inputs[1], int(budget), method=spec.name,
                                                          seed=seed, **kwargs)
            except GotdConvergenceError as exc:  # the solver's own words, with the method and the fix
                raise GotdConvergenceError(f"method {method}: the OT solve did not converge: {exc}; no selection "
                                           "was written (--allow-unconverged / allow_unconverged=True keeps one)"
                                           ) from exc
    return out


def _unconverged_message(method: str, diag: Mapping[str, Any], *, allowed: bool = False) -> str:
    where = (f"marginal error {float(diag.get('marginal_error', math.nan)):.3g} > tol {diag.get('tol')} after "
             f"{diag.get('iterations')} iterations (eps={float(diag.get('eps', math.nan)):.4g})")
    if allowed:
        return f"the OT solve did NOT converge ({where}); the selection was kept because it was asked for"
    return (f"method {method}: the OT solve did not converge ({where}); no selection was written. Raise eps/eps_rel or "
            "max_iter, or pass --allow-unconverged (allow_unconverged=True) to keep an unconverged selection")


def _check_pool_size(source: Any, pool_df: pd.DataFrame, specs: Mapping[str, Any]) -> None:
    """GOT-D's calibrated gradient compares each candidate with the others: a 1-row pool has nothing to rank."""
    if len(pool_df) < 2 and any(accepts(s.fn, "eps_rel") for s in specs.values()):
        ot_methods = ", ".join(m for m, s in specs.items() if accepts(s.fn, "eps_rel"))
        raise GotdInputError(f"pool {_name(source)} has {len(pool_df)} row after chunking: {ot_methods} ranks "
                             "candidates against each other and needs at least 2; add pool texts (or lower "
                             "--chunk-chars to split long ones)")


def _load(pool: Any, target: Any, load: dict[str, Any], progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    from gotd.stages.inputs import load_pool, load_target

    target_keys = {k[len("target_"):]: load.pop(k) for k in list(load) if k.startswith("target_")}
    shared = {k: load[k] for k in ("chunk_chars", "data_dir", "smoke", "seed", "drop_empty") if k in load}
    if isinstance(pool, pd.DataFrame):
        pool_df = pool.reset_index(drop=True)
    else:
        pool_df = load_pool(os.fspath(pool), progress=progress, **load)
    if isinstance(target, pd.DataFrame):
        target_df = target.reset_index(drop=True)
    else:
        target_df = load_target(os.fspath(target), **{**shared, **target_keys})
    return pool_df, target_df


def _name(source: Any) -> str:
    return "(frame)" if isinstance(source, pd.DataFrame) else os.fspath(source)
