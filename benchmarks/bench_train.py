"""Cost of pre-fine-tuning and zero-shot evaluation of a causal LM (default SmolLM2-135M) on this machine.

Reports, for each training precision (fp32, and bf16 autocast where asked for):

- seconds per optimiser step at batch ``--batch-size`` x ``--block`` tokens (default 8 x 128), through
  ``gotd.train.train`` itself (the Trainer, AdamW, packing); the first ``--warmup`` steps are left out
  and the median and the best of the rest are reported (on a shared machine the best is the closer
  estimate of what the hardware does);
- zero-shot examples/s: two-label prompts (``Review: {text}\\nSentiment: {label}``) scored by
  ``gotd.evaluate.zero_shot_scores`` with the model in fp32 (one example = both label prompts).

Texts are paragraphs of Python standard-library docstrings (no download needed).

Usage::

    python benchmarks/bench_train.py [--model smollm2-135m] [--steps 4] [--precisions fp32 bf16] [--device cpu]

Timings on a machine that others use at the same time are upper bounds; run it on an idle machine.
Writes ``benchmarks/results/train_<device>.json`` with provenance.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_embed import docstring_paragraphs  # noqa: E402

from gotd._io import provenance, write_json_atomic  # noqa: E402
from gotd.evaluate import zero_shot_scores  # noqa: E402
from gotd.models import load_causal_lm_and_tokenizer  # noqa: E402
from gotd.train import TrainConfig, train  # noqa: E402


class StepClock(TrainerCallback):
    """Wall time at the end of every optimiser step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
        if not self.times:
            self.times.append(time.perf_counter())

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
        self.times.append(time.perf_counter())


def time_training(model: str, texts: list[str], precision: str, args: argparse.Namespace) -> dict:
    clock = StepClock()
    config = TrainConfig(max_steps=args.warmup + args.steps, learning_rate=1e-5, batch_size=args.batch_size,
                         max_length=args.block, precision=precision, save_steps=10_000)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(model, texts, Path(tmp) / "out", config, device=args.device, progress=False,
                       callbacks=[clock])
    durations = [b - a for a, b in zip(clock.times, clock.times[1:])]
    measured = durations[args.warmup:]
    return {"precision": precision, "batch_size": args.batch_size, "block_tokens": args.block,
            "seconds_per_step": statistics.median(measured), "best_seconds_per_step": min(measured),
            "step_seconds": durations,
            "tokens_per_second": args.batch_size * args.block / statistics.median(measured),
            "final_loss": result.final_loss}


def time_zero_shot(model: str, texts: list[str], args: argparse.Namespace) -> dict:
    lm, tok, _ = load_causal_lm_and_tokenizer(model, device=args.device, dtype="float32")
    sample = [" ".join(t.split()[:40]) for t in texts[:args.zero_shot_examples]]
    zero_shot_scores(lm, tok, sample[:4], ["fresh", "rotten"], verbalizers=["positive", "negative"],
                     template="Review: {text}\nSentiment: {label}", progress=False)  # warm-up
    start = time.perf_counter()
    zero_shot_scores(lm, tok, sample, ["fresh", "rotten"], verbalizers=["positive", "negative"],
                     template="Review: {text}\nSentiment: {label}", batch_size=8, progress=False)
    seconds = time.perf_counter() - start
    return {"examples": len(sample), "labels": 2, "words_per_text": 40, "seconds": seconds,
            "examples_per_second": len(sample) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=4, help="measured optimiser steps per precision")
    parser.add_argument("--warmup", type=int, default=1, help="steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block", type=int, default=128, help="tokens per block")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--zero-shot-examples", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    texts = docstring_paragraphs()
    results = {"model": args.model, "device": args.device, "torch_threads": torch.get_num_threads(),
               "training": [], "zero_shot": None}
    for precision in args.precisions:
        row = time_training(args.model, texts, precision, args)
        results["training"].append(row)
        print(f"train {args.model} {precision}: {row['seconds_per_step']:.2f} s/step (median; best "
              f"{row['best_seconds_per_step']:.2f}) at {args.batch_size} x "
              f"{args.block} tokens ({row['tokens_per_second']:.0f} tokens/s; steps "
              f"{', '.join(f'{s:.2f}' for s in row['step_seconds'])} s)", flush=True)
    results["zero_shot"] = time_zero_shot(args.model, texts, args)
    zs = results["zero_shot"]
    print(f"zero-shot {args.model} fp32: {zs['examples_per_second']:.2f} examples/s "
          f"({zs['examples']} examples x 2 labels in {zs['seconds']:.1f} s)")
    out = Path(__file__).resolve().parent / "results" / f"train_{args.device.split(':')[0]}.json"
    write_json_atomic(out, {**results, **provenance(device=args.device)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
