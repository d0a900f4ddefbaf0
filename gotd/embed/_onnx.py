"""The ONNX Runtime backend: the encoder exported once to ONNX and run by ONNX Runtime's CPU kernels, in float32.

On a CPU without bf16 instructions this is the faster float32 path: ``bench_embed.py --cpu-backends``
(``GOTD_CPU_BF16=0``, 2 threads, a shared 2-core machine at load average 8-14, best of 2 passes) measured
2.41x the torch float32 throughput of MiniLM with torch restricted to AVX2 (``--emulate-avx2``; ONNX
Runtime still picks its own kernels) and 2.67x with both at the machine's AVX-512, with smallest cosine
to torch float32 0.9999999 and the same GOT-D top 1% (``benchmarks/results/embed_cpu_backends*.json``).
Dynamic int8 quantisation was measured in the same runs and left out: 1.6-2.0x, but smallest cosine 0.93. The graph is exported from the loaded torch weights at
load time (a few seconds) into a temporary file that ONNX Runtime reads into memory, so nothing is cached
on disk besides the embeddings. Needs ``pip install 'gotd[onnx]'`` (``onnxruntime``).
"""
from __future__ import annotations

import tempfile
import types
import warnings
from pathlib import Path
from typing import Any

import torch

from gotd.errors import GotdInputError

BACKENDS = ("torch", "onnxruntime")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def check_backend(backend: str, device: str, dtype: str) -> str:
    """``backend`` when it can run on ``device`` in ``dtype``, else a clear error."""
    if backend not in BACKENDS:
        raise GotdInputError(f"backend={backend!r} is not one of {BACKENDS}; 'torch' is the default")
    if backend == "onnxruntime":
        if not device.startswith("cpu"):
            raise GotdInputError(f"backend='onnxruntime' runs on the CPU only, not on device={device!r}; "
                                 "use backend='torch' on a GPU")
        if dtype != "float32":
            raise GotdInputError(f"backend='onnxruntime' computes in float32, not {dtype}; pass dtype='float32' "
                                 "or 'auto'")
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise GotdInputError("backend='onnxruntime' needs ONNX Runtime: pip install 'gotd[onnx]'") from exc
    return backend


class _LastHidden(torch.nn.Module):
    """The encoder as a function of its token inputs, returning only the last hidden states."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).last_hidden_state


class OnnxEncoderModel:
    """Stands in for the torch model in :class:`~gotd.embed.Encoder`: same inputs, same ``last_hidden_state``."""

    def __init__(self, model: torch.nn.Module, input_names: list[str]) -> None:
        import onnxruntime as ort

        self.names = tuple(name for name in _INPUTS if name in input_names)
        example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in self.names)
        axes = {name: {0: "batch", 1: "length"} for name in (*self.names, "hidden")}
        with tempfile.TemporaryDirectory(prefix="gotd-onnx-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings say nothing about the numbers
            path = Path(tmp) / "encoder.onnx"
            torch.onnx.export(_LastHidden(model.eval(), self.names), example, str(path), input_names=list(self.names),
                              output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Spinning worker threads would fight other processes of a shared machine for the cores.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, **batch: torch.Tensor) -> Any:
        missing = [name for name in self.names if name not in batch]
        if "token_type_ids" in missing:
            batch = {**batch, "token_type_ids": torch.zeros_like(batch["input_ids"])}
        feeds = {name: batch[name].cpu().numpy() for name in self.names}
        hidden = self.session.run(None, feeds)[0]
        return types.SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))
