"""``gotd data``, ``gotd models``, ``gotd run``, ``gotd train`` and ``gotd evaluate``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gotd.errors import GotdInputError
from gotd.outputs import DATA_MANIFEST, check_file_output, check_output


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
    check_output(args.data_dir, flag="--data-dir", folder=True)  # writable, before any download
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

    out = Path(args.out) if args.out else Path(args.data_dir) / "pool"
    names = args.sources or assets.default_names("pool")
    sources = {f"data set {name}": Path(args.data_dir) / name for name in names}
    # a pool may replace only a pool `gotd data pool` wrote, never a fetched data set or a user's folder
    out = check_output(out, inputs={"--data-dir": args.data_dir, **sources}, folder=True, record=DATA_MANIFEST,
                       replaces_folder=True)
    pool = assets.build_pool(args.data_dir, sources=args.sources, chunk_chars=args.chunk_chars or None,
                             held_out_splits=args.held_out_splits, keep_overlap=args.keep_overlap, progress=True)
    out = assets.save_pool(pool, out)
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
    from gotd.runner.run import builtin_config_descriptions, load_config, plan_run, run_config

    if args.list:
        for name, description in builtin_config_descriptions().items():
            print(f"{name:22s} {description}")
        return 0
    if not args.config:
        raise GotdInputError("name a config: gotd run demo, gotd run my.yaml (gotd run --list shows the built-in ones)")
    from gotd.runner.execute import check_kernel

    config = load_config(args.config, args.overrides)
    check_kernel(args.kernel)
    if args.plan:
        for point in plan_run(config, args.reports_dir):
            after = f"  (after {', '.join(point.depends_on)})" if point.depends_on else ""
            print(f"{point.name}{after}")
            for key, value in point.parameters.items():
                print(f"    {key} = {json.dumps(value)}")
        return 0
    summary = run_config(config, reports_dir=args.reports_dir, fail_fast=args.fail_fast, force=args.force,
                         html=not args.no_html, progress=not args.quiet, stream_output=not args.quiet,
                         kernel_name=args.kernel, jobs=args.jobs)
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
    from gotd.stages import prefinetune_stage
    from gotd.train import preset

    from gotd.train import RECORD_NAME

    model = Path(args.model)
    inputs = {"--selection": args.selection, **({"--model": args.model} if model.exists() else {})}
    check_output(args.out, inputs=inputs, folder=True, record=RECORD_NAME, replaces_folder=True)
    overrides = {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg_") and value is not None}
    config = preset(args.preset, **overrides)
    # the notebooks' rule: reuse a finished identical output, resume an unfinished run's checkpoints
    result = prefinetune_stage(args.model, args.selection, args.out, config, text_field=args.text_field,
                               resume=True if args.resume else None, keep_checkpoints=args.keep_checkpoints,
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
    from gotd.evaluate import EvalConfig, evaluate_on_task, write_results

    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise GotdInputError(f"--out {out} must end in .csv or .parquet")
    # and writable: checked before hours of evaluation
    check_file_output(out, inputs={"--model": args.model, "--prompts": args.prompts,
                                   "--utility-texts": args.utility_texts})
    toxicity = None
    if "toxicity" in args.metrics:
        if args.prompts is None:
            raise GotdInputError("--metrics toxicity needs --prompts FILE (e.g. prompts from the detox data)")
        toxicity = {"prompts": read_texts(args.prompts, text_field=args.prompt_field)["text"].tolist(),
                    "scorer": args.scorer, "n_generations": args.n_generations,
                    "max_new_tokens": args.max_new_tokens, "top_p": args.top_p}
        if args.utility_texts:
            toxicity["utility_texts"] = read_texts(args.utility_texts)["text"].tolist()
    finetune = {"seeds": args.seeds, "max_train_labels": args.max_train_labels, "learning_rates": args.finetune_lr,
                "epochs": args.finetune_epochs, "max_length": args.finetune_max_length, "truncate": args.truncate}
    cap = args.max_examples or 0  # one split and one sample size for zero-shot and perplexity alike
    config = EvalConfig(evaluations=args.metrics, eval_split=args.split, ppl_split=args.split, max_examples=cap,
                        max_ppl_texts=cap, seed=args.seed, batch_size=args.batch_size, ppl_max_length=args.max_length,
                        scoring=args.scoring, n_bootstrap=args.bootstrap, finetune=finetune, toxicity=toxicity)
    table = evaluate_on_task(args.model, args.task, config, data_dir=args.data_dir, model_name=args.model_name,
                             device=args.device, progress=not args.quiet)
    from gotd.devices import resolve_device

    device = str(resolve_device(args.device))
    # the sidecar first: a results file always has the sidecar that proves gotd wrote it
    write_json_atomic(str(out) + ".json", {"command": "evaluate", "arguments": vars(args), "rows": len(table),
                                           **provenance(device=device)})
    write_results(table, out)
    columns = [c for c in ("model", "task", "split", "metric", "value", "ci_low", "ci_high", "seed", "n")
               if c in table.columns]
    print(table[columns].to_string(index=False))
    print(f"results: {out} (+ {out}.json)")
    return 0

