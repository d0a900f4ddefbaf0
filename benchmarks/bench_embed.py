"""Throughput of the default encoder in float32 and bfloat16, against the machine's GEMM throughput.

Texts are real English prose: paragraphs of Python standard-library docstrings (no download needed).
For each dtype the script reports texts/s, real tokens/s, and the achieved encoder FLOP/s as a fraction of
the measured throughput of a matrix product with the encoder's shapes
(``(batch * tokens, hidden) @ (hidden, intermediate)``).

Encoder FLOPs are estimated as ``2 * P * T``: P the parameters that take part in matrix products (all but
the embedding tables) and T the real tokens; attention-score products and padding are not counted, so the
ratio is a lower bound on how busy the matrix units are.

Usage::

    python benchmarks/bench_embed.py [--n-texts 400] [--device cpu] [--repeats 3]
    GOTD_CPU_BF16=0 python benchmarks/bench_embed.py --cpu-backends [--emulate-avx2]

``--cpu-backends`` compares faster CPU paths for a machine without bf16 against the float32 torch path
in one run: dynamic int8 quantisation of the Linear layers (``torch.ao.quantization.quantize_dynamic``,
per-channel weights), ONNX Runtime in float32 (when ``onnxruntime`` and ``onnx`` are installed), and
sentence-transformers (when installed). For each it prints texts/s, the speed ratio to torch float32,
the smallest cosine to the float32 embeddings, and how many of GOT-D's top 1% of a docstring pool it
selects alike (``gotd.select`` on normalised embeddings). The acceptance bar for a new encoder backend is
cosine >= 0.999 and the same top 1%. ``--emulate-avx2`` sets ``ATEN_CPU_CAPABILITY=avx2``,
``MKL_ENABLE_INSTRUCTIONS=AVX2`` and ``ONEDNN_MAX_CPU_ISA=AVX2`` before torch loads; fbgemm (int8) and
ONNX Runtime choose their kernels themselves and still use the machine's widest instructions, so their
ratios on a real AVX2-only CPU can be lower.

Timings are the best of ``--repeats`` passes, so a busy machine shows less than its capability only
when every pass was disturbed; run it on an otherwise idle machine.

Writes ``benchmarks/results/embed_<device>.json`` with provenance.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if "--emulate-avx2" in sys.argv:  # must be set before torch and its libraries load
    os.environ.update(ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2", ONEDNN_MAX_CPU_ISA="AVX2")

import torch  # noqa: E402

from gotd._io import provenance, write_json_atomic  # noqa: E402
from gotd.embed import DEFAULT_ENCODER, Encoder, cpu_has_fast_bf16  # noqa: E402
from gotd.toy import stdlib_paragraphs  # noqa: E402

STDLIB_MODULES = (
    "abc argparse array ast asyncio base64 bisect bz2 calendar cmath codecs collections configparser "
    "contextlib copy csv dataclasses datetime decimal difflib dis doctest email enum filecmp fnmatch "
    "fractions functools gc gettext glob gzip hashlib heapq hmac html.parser http.client importlib inspect "
    "io itertools json locale logging lzma math mmap operator os pathlib pickle pkgutil platform pprint "
    "queue random re runpy sched secrets selectors shlex shutil signal socket sqlite3 ssl stat statistics "
    "string struct subprocess sysconfig tarfile tempfile textwrap threading time timeit tokenize trace "
    "traceback typing unicodedata unittest urllib.request uuid warnings weakref xml.etree.ElementTree "
    "zipfile zlib"
).split()


def docstring_paragraphs(min_words: int = 12, max_words: int = 250) -> list[str]:
    """Return the distinct prose paragraphs of :data:`STDLIB_MODULES`' docstrings, in a fixed order."""
    return stdlib_paragraphs(STDLIB_MODULES, min_words=min_words, max_words=max_words)


def benchmark_texts(n_texts: int, seed: int = 0) -> list[str]:
    """A fixed random sample of ``n_texts`` docstring paragraphs."""
    paragraphs = docstring_paragraphs()
    if len(paragraphs) < n_texts:
        raise SystemExit(f"only {len(paragraphs)} docstring paragraphs found; pass --n-texts <= {len(paragraphs)}")
    return random.Random(seed).sample(paragraphs, n_texts)


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gemm_flops_per_s(
    m: int, k: int, n: int, dtype: torch.dtype, device: str, windows: int = 5, window_seconds: float = 0.3
) -> float:
    """Measured FLOP/s of ``(m, k) @ (k, n)`` (2 m k n FLOPs each): the best of several timed windows.

    The best window is the machine's capability with the least interference from other processes.
    """
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(device, dtype)
    b = torch.randn(k, n, generator=generator).to(device, dtype)
    for _ in range(3):
        torch.matmul(a, b)
    _synchronize(device)
    best = 0.0
    for _ in range(windows):
        calls, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b)
            calls += 1
            _synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= window_seconds:
                break
        best = max(best, 2.0 * m * k * n * calls / elapsed)
    return best


def matmul_parameters(model: torch.nn.Module) -> int:
    """Parameters outside the embedding tables: the ones that cost 2 FLOPs per token each."""
    tables = [module for module in model.modules() if isinstance(module, torch.nn.Embedding)]
    embedding_ids = {id(p) for module in tables for p in module.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedding_ids)


def time_encoders(texts: list[str], dtypes: tuple[str, ...], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time ``encode(texts)`` per dtype; passes alternate between dtypes so that a slow spell of the
    machine hits all of them alike. Keeps every pass time; rates use the fastest pass."""
    encoders = {
        dtype: Encoder(DEFAULT_ENCODER, device=args.device, dtype=dtype, max_length=args.max_length,
                       batch_size=args.batch_size)
        for dtype in dtypes
    }
    times: dict[str, list[float]] = {dtype: [] for dtype in dtypes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation counts are reported in the table instead
        for encoder in encoders.values():
            encoder.encode(texts[: args.batch_size], progress=False)  # load weights, warm up kernels
        for _ in range(args.repeats):
            for dtype, encoder in encoders.items():
                _synchronize(args.device)
                start = time.perf_counter()
                encoder.encode(texts, progress=False)
                _synchronize(args.device)
                times[dtype].append(time.perf_counter() - start)
    rows = []
    for dtype, encoder in encoders.items():
        features, _ = encoder._tokenize(texts)
        n_tokens = sum(len(f["input_ids"]) for f in features)
        params = matmul_parameters(encoder.torch_model)
        best = min(times[dtype])
        rows.append({
            "dtype": dtype,
            "seconds": best,
            "seconds_all_passes": times[dtype],
            "texts_per_s": len(texts) / best,
            "tokens_per_s": n_tokens / best,
            "n_tokens": n_tokens,
            "n_truncated": encoder.last_stats["n_truncated"],
            "matmul_params": params,
            "encoder_flops_per_s": 2.0 * params * n_tokens / best,
            "hidden_size": encoder.dim,
            "intermediate_size": int(getattr(encoder.config, "intermediate_size", 4 * encoder.dim)),
        })
    return rows


# --------------------------------------------------------------------------------------------------
# Faster CPU paths against torch float32 (--cpu-backends)
# --------------------------------------------------------------------------------------------------
class _OrtEncoderModel(torch.nn.Module):
    """An ONNX Runtime session standing in for the encoder's torch model (float32, same inputs)."""

    def __init__(self, model: torch.nn.Module, folder: Path) -> None:
        import onnxruntime as ort

        super().__init__()

        class _Hidden(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        path = folder / "encoder.onnx"
        names = ["input_ids", "attention_mask", "token_type_ids"]
        ids = torch.ones(2, 16, dtype=torch.long)
        torch.onnx.export(_Hidden(model).eval(), (ids, ids, torch.zeros_like(ids)), str(path), input_names=names,
                          output_names=["hidden"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "length"} for n in [*names, "hidden"]})
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads would fight the other processes of a shared machine for the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> Any:
        import types

        token_type_ids = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        hidden = self.session.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy(),
                                         "token_type_ids": token_type_ids.numpy()})[0]
        return types.SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))


def _cpu_candidates(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """name -> function(texts) -> float32 embeddings, normalised, for every backend available here."""
    def torch_encoder() -> Encoder:
        return Encoder(DEFAULT_ENCODER, device="cpu", dtype="float32", normalize=True,
                       max_length=args.max_length, batch_size=args.batch_size)

    candidates: dict[str, Any] = {"torch-fp32": torch_encoder()}
    int8 = torch_encoder()
    int8._model = torch.ao.quantization.quantize_dynamic(
        int8.torch_model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8)
    candidates["torch-int8-dynamic"] = int8
    try:
        ort_encoder = torch_encoder()
        ort_encoder._model = _OrtEncoderModel(ort_encoder.torch_model, work)
        candidates["onnxruntime-fp32"] = ort_encoder
    except ImportError as exc:
        print(f"onnxruntime-fp32: skipped ({exc})")
    try:
        from sentence_transformers import SentenceTransformer

        from gotd.embed import default_model_dir

        st = SentenceTransformer(str(default_model_dir()), device="cpu")
        st.max_seq_length = args.max_length
        candidates["sentence-transformers"] = st
    except ImportError as exc:
        print(f"sentence-transformers: skipped ({exc})")
    return candidates


def _encode_with(candidate: Any, texts: list[str], batch_size: int) -> Any:
    if isinstance(candidate, Encoder):
        return candidate.encode(texts, progress=False)
    return candidate.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False)


def compare_cpu_backends(pool: list[str], target: list[str], args: argparse.Namespace) -> int:
    """Time each CPU backend on pool + target (alternating passes, best kept) and check its numbers."""
    import tempfile

    import numpy as np

    import gotd

    texts = pool + target
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation counts and deprecation notices
        candidates = _cpu_candidates(args, Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in candidates}
        embeddings: dict[str, Any] = {}
        for candidate in candidates.values():
            _encode_with(candidate, texts[: args.batch_size], args.batch_size)  # warm up
        for _ in range(args.repeats):
            for name, candidate in candidates.items():
                start = time.perf_counter()
                embeddings[name] = np.asarray(_encode_with(candidate, texts, args.batch_size), dtype=np.float32)
                times[name].append(time.perf_counter() - start)
    reference = embeddings["torch-fp32"]
    budget = max(1, len(pool) // 100)

    def top(emb: Any) -> set[int]:
        return set(np.asarray(gotd.select(emb[: len(pool)], emb[len(pool):], budget, method="gotd", seed=0)).tolist())

    chosen = top(reference)
    load = os.getloadavg()
    print(f"{len(pool)} pool + {len(target)} target docstring paragraphs, batch {args.batch_size}, "
          f"max_length {args.max_length}, {torch.get_num_threads()} threads, native CPU bf16 {cpu_has_fast_bf16()}, "
          f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '(default)')}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    header = f"{'backend':<22} {'texts/s':>8} {'x fp32':>7} {'min cos':>9} {'top-1% same':>12} {'passes (s)'}"
    print(header)
    print("-" * len(header))
    rows = []
    for name, emb in embeddings.items():
        cosine = (emb * reference).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(reference, axis=1)
        same = len(top(emb) & chosen)
        row = {"backend": name, "texts_per_s": len(texts) / min(times[name]),
               "speedup": min(times["torch-fp32"]) / min(times[name]), "min_cosine": float(cosine.min()),
               "mean_cosine": float(cosine.mean()), "top1pct_same": same, "top1pct": budget,
               "seconds_all_passes": times[name],
               "passes": bool(cosine.min() >= 0.999 and same == budget)}
        rows.append(row)
        print(f"{name:<22} {row['texts_per_s']:>8.1f} {row['speedup']:>7.2f} {row['min_cosine']:>9.5f} "
              f"{same:>5}/{budget:<6} " + ", ".join(f"{t:.1f}" for t in times[name]))
    for row in rows[1:]:
        verdict = "passes" if row["passes"] else "fails"
        print(f"{row['backend']}: {verdict} the bar (cosine >= 0.999, same top 1%); {row['speedup']:.2f}x torch fp32")
    record = {"benchmark": "embed_cpu_backends", "encoder": DEFAULT_ENCODER, "n_pool": len(pool),
              "n_target": len(target), "batch_size": args.batch_size, "max_length": args.max_length,
              "threads": torch.get_num_threads(), "native_cpu_bf16": cpu_has_fast_bf16(),
              "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"), "load_average": load, "rows": rows,
              "provenance": provenance(device="cpu")}
    tag = "_avx2" if args.emulate_avx2 else ""
    path = write_json_atomic(args.out_dir / f"embed_cpu_backends{tag}.json", record)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-texts", type=int, default=400)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per dtype; the best is kept")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--cpu-backends", action="store_true",
                        help="compare int8 / ONNX Runtime / sentence-transformers with torch float32 instead")
    parser.add_argument("--emulate-avx2", action="store_true", help="restrict torch's kernels to AVX2")
    parser.add_argument("--pool-size", type=int, default=1500, help="--cpu-backends: pool texts (top 1%%)")
    parser.add_argument("--target-size", type=int, default=200, help="--cpu-backends: target texts")
    args = parser.parse_args(argv)
    if args.cpu_backends:
        paragraphs = benchmark_texts(args.pool_size + args.target_size)
        return compare_cpu_backends(paragraphs[: args.pool_size], paragraphs[args.pool_size:], args)

    texts = benchmark_texts(args.n_texts)
    rows = time_encoders(texts, ("float32", "bfloat16"), args)
    mean_tokens = rows[0]["n_tokens"] / len(texts)
    gemm_shape = (args.batch_size * round(mean_tokens), rows[0]["hidden_size"], rows[0]["intermediate_size"])
    for row in rows:
        row["gemm_shape"] = list(gemm_shape)
        row["gemm_flops_per_s"] = gemm_flops_per_s(*gemm_shape, getattr(torch, row["dtype"]), args.device)
        row["encoder_over_gemm"] = row["encoder_flops_per_s"] / row["gemm_flops_per_s"]

    print(f"encoder {DEFAULT_ENCODER} on {args.device}, {torch.get_num_threads()} threads, {len(texts)} texts, "
          f"{mean_tokens:.1f} tokens/text, batch {args.batch_size}, max_length {args.max_length}, "
          f"native CPU bf16: {cpu_has_fast_bf16()}")
    print(f"GEMM shape (m, k, n) = {gemm_shape}; "
          f"encoder FLOPs = 2 x {rows[0]['matmul_params']:,} matmul params x tokens")
    header = f"{'dtype':<9} {'texts/s':>9} {'tokens/s':>10} {'enc GFLOP/s':>12} {'GEMM GFLOP/s':>13} {'enc/GEMM':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['dtype']:<9} {row['texts_per_s']:>9.1f} {row['tokens_per_s']:>10.0f} "
              f"{row['encoder_flops_per_s'] / 1e9:>12.1f} {row['gemm_flops_per_s'] / 1e9:>13.1f} "
              f"{row['encoder_over_gemm']:>9.2f}")
    speedup = rows[1]["texts_per_s"] / rows[0]["texts_per_s"]
    print(f"bf16 / fp32 encoder speed-up: {speedup:.2f}x; truncated texts: {rows[0]['n_truncated']}")
    for row in rows:
        print(f"{row['dtype']} pass times (s): " + ", ".join(f"{t:.2f}" for t in row["seconds_all_passes"]))

    record = {
        "benchmark": "embed",
        "encoder": DEFAULT_ENCODER,
        "n_texts": len(texts),
        "mean_tokens_per_text": mean_tokens,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": torch.get_num_threads(),
        "native_cpu_bf16": cpu_has_fast_bf16(),
        "bf16_speedup": speedup,
        "rows": rows,
        "provenance": provenance(device=args.device),
    }
    device_tag = args.device.replace(":", "")
    path = write_json_atomic(args.out_dir / f"embed_{device_tag}.json", record)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
