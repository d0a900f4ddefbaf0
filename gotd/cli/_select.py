"""``gotd select``, ``gotd embed``, ``gotd select-demo`` and ``gotd methods``: thin doors onto the select stage."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from gotd.errors import GotdInputError


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _encoder(args: argparse.Namespace) -> Any:
    """The encoder of the command: options given on the command line win over ``--preset``'s."""
    from gotd.stages import encoder_for

    return encoder_for(args.model, preset=getattr(args, "preset", None), pooling=args.pooling,
                       normalize=args.normalize, max_length=args.max_length, batch_size=args.batch_size,
                       device=args.device, dtype=args.dtype, storage_dtype=getattr(args, "storage_dtype", None),
                       tokenize_workers=getattr(args, "tokenize_workers", None))


def _cache_dir(args: argparse.Namespace) -> Path | None:
    from gotd.stages.inputs import default_cache_dir

    from gotd.outputs import check_output

    if args.no_cache:
        return None
    if args.cache_dir:
        # not in a data set; writability is probed where a new cache entry is written (a read-only cache of
        # finished entries still serves)
        return check_output(args.cache_dir, flag="--cache-dir", folder=True, probe=False)
    return default_cache_dir()


def _method_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in ("eps", "eps_rel", "tol", "max_iter"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.subsample is not None:
        options["subsample"] = args.subsample if args.subsample <= 1 else int(args.subsample)
    for item in args.option:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise GotdInputError(f"--option {item!r} is not KEY=VALUE; write e.g. --option k_neighbors=5")
        try:
            options[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = raw
    return options


def _file_or_name(value: str) -> str:
    """A path that exists (or reads as a path) made absolute from the working directory; a name as it is."""
    from gotd.stages.inputs import looks_like_file

    return os.fspath(Path(value).expanduser().absolute()) if looks_like_file(value) else value


def cmd_select(args: argparse.Namespace) -> int:
    from gotd.stages.inputs import looks_like_file
    from gotd.stages import available_methods, select_stage

    if args.method not in available_methods():
        raise GotdInputError(f"unknown method {args.method!r}; choose one of {', '.join(available_methods())}")
    target_chunk = args.target_chunk_chars if args.target_chunk_chars is not None else args.chunk_chars
    result = select_stage(
        _file_or_name(args.pool), _file_or_name(args.target), args.budget, methods=[args.method],
        out={args.method: args.out}, seed=args.seed, encoder=_encoder_options(args), preset=args.preset,
        cache_dir=None if args.no_cache else _cache_dir(args), shard_size=args.shard_size,
        options=_method_options(args), allow_unconverged=args.allow_unconverged, progress=not args.quiet,
        load={"text_field": args.pool_field, "chunk_chars": args.chunk_chars, "dedup": args.dedup,
              "drop_empty": args.drop_empty, "target_text_field": args.target_field,
              "target_chunk_chars": target_chunk,
              "target_split": None if looks_like_file(args.target) else "train"},
        record={"pool": os.fspath(args.pool), "target": os.fspath(args.target), "chunk_chars": args.chunk_chars or None,
                "target_chunk_chars": target_chunk or None, "dedup": args.dedup},
        log=_note)
    out, selection = result.paths[args.method], result.selections[args.method]
    diag = selection.diagnostics
    summary = f"selected {len(selection.indices)} of {len(result.pool)} with {args.method} -> {out} (+ {out}.json)"
    if "eps" in diag:
        summary += (f"; OT eps={diag['eps']:.4g} (eps/std(C)={diag['eps_rel']:.3g}), {diag['iterations']} "
                    f"iterations, marginal error {diag['marginal_error']:.2e}, {diag['seconds']:.1f} s")
    if args.preset:
        summary += f"; preset {args.preset}"
    if args.method in result.unconverged:
        summary += f"; NOT CONVERGED (marginal error above tol {diag.get('tol')}, kept by --allow-unconverged)"
    print(summary)
    return 0


def _encoder_options(args: argparse.Namespace) -> dict[str, Any]:
    """The encoder options as the user gave them (None: not given, so the preset's or the default applies)."""
    return {"model": args.model, "pooling": args.pooling, "normalize": args.normalize,
            "max_length": args.max_length, "batch_size": args.batch_size, "device": args.device,
            "dtype": args.dtype, "storage_dtype": args.storage_dtype, "tokenize_workers": args.tokenize_workers}


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from gotd._io import atomic_path, provenance, write_json_atomic
    from gotd.outputs import check_file_output
    from gotd.data import texts_fingerprint
    from gotd.stages.inputs import prepare_pool

    out = Path(args.out)
    if out.is_dir():
        raise GotdInputError(f"--out {out} is a folder; give the .npy file to write (e.g. {out / 'embeddings.npy'})")
    if out.suffix != ".npy":
        out = out.with_suffix(out.suffix + ".npy")
    check_file_output(out, inputs={"--input": args.input})
    frame = prepare_pool(args.input, text_field=args.field, chunk_chars=args.chunk_chars or None,
                         drop_empty=args.drop_empty, progress=not args.quiet)
    encoder = _encoder(args)
    texts = frame["text"].tolist()
    extra = {} if args.shard_size is None else {"shard_size": args.shard_size}
    vectors = encoder.encode(texts, cache_dir=_cache_dir(args), progress=not args.quiet, **extra)
    # the sidecar first: an .npy file always has the sidecar that proves gotd wrote it
    write_json_atomic(str(out) + ".json", {
        "input": os.fspath(args.input), "rows": len(texts), "dim": int(vectors.shape[1]),
        "ids": frame["id"].tolist(), "texts_sha256": texts_fingerprint(texts), "encoder": encoder.settings(),
        "chunk_chars": args.chunk_chars or None, **provenance(device=encoder.device)})
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, vectors)
    print(f"embedded {len(texts)} texts ({vectors.shape[1]}-d) -> {out} (+ {out}.json)")
    return 0


def cmd_renamed_demo(args: argparse.Namespace) -> int:
    from gotd.errors import GotdInputError

    raise GotdInputError("`gotd demo` is now `gotd select-demo` (the select stage alone on the built-in data); "
                         "the main job is `gotd run demo`")


def cmd_select_demo(args: argparse.Namespace) -> int:
    from gotd.select_demo import run_select_demo

    table = run_select_demo(args.out, data_dir=args.data_dir, budget=args.budget, seed=args.seed,
                            cache_dir=_cache_dir(args), encoder=_encoder(args), shard_size=args.shard_size,
                            progress=not args.quiet)
    print(table.to_string())
    print(f"report: {Path(args.out) / 'summary.md'} (selections: {args.out}/<method>.jsonl)")
    return 0


def cmd_methods(_: argparse.Namespace) -> int:
    from gotd.stages import available_methods, selector_specs

    for name, spec in selector_specs(available_methods()).items():
        reads = {"embeddings": "embeddings", "texts": "raw texts", "none": "only the pool size"}.get(spec.inputs,
                                                                                                    spec.inputs)
        print(f"{name:15s} {spec.summary}  [reads {reads}]")
    return 0
