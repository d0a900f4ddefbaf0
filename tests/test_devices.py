"""The one device/dtype resolver every stage uses."""

import pytest
import torch

from gotd import devices
from gotd.errors import GotdInputError


def test_auto_and_none_mean_the_same_device():
    assert devices.resolve_device(None) == devices.resolve_device("auto") == devices.resolve_device("AUTO")


def test_cpu_device_passes_and_bad_device_is_named():
    assert devices.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(GotdInputError, match="not a torch device"):
        devices.resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_gpu_names_the_fix():
    with pytest.raises(GotdInputError, match="device='cpu'"):
        devices.resolve_device("cuda")


@pytest.mark.parametrize("name, expected", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                            ("torch.float16", torch.float16), (torch.float64, torch.float64),
                                            ("float32", torch.float32)])
def test_dtype_names_and_objects(name, expected):
    assert devices.resolve_dtype(name, "cpu") == expected


def test_auto_dtype_on_cpu_follows_the_policy(monkeypatch):
    monkeypatch.setenv("GOTD_CPU_BF16", "1")
    assert devices.resolve_dtype("auto", "cpu", cpu_bf16=True) == torch.bfloat16
    assert devices.resolve_dtype(None, "cpu", cpu_bf16=False) == torch.float32
    monkeypatch.setenv("GOTD_CPU_BF16", "0")
    assert devices.resolve_dtype("auto", "cpu", cpu_bf16=True) == torch.float32


def test_dtype_outside_the_callers_set_is_refused():
    with pytest.raises(GotdInputError, match="float32, bfloat16"):
        devices.resolve_dtype("float64", "cpu", allowed=("float32", "bfloat16"))
    with pytest.raises(GotdInputError, match="not supported"):
        devices.resolve_dtype("int8", "cpu")


def test_dtype_name_round_trip():
    for name, value in devices.DTYPES.items():
        assert devices.dtype_name(value) == name
    assert devices.dtype_name("bf16") == "bfloat16"


def test_presets_name_their_stages_and_refuse_unknown_names():
    from gotd.presets import preset_options

    assert preset_options(None, "ot") == {}
    assert preset_options("paper", "encoder")["pooling"] == "mean_with_padding"
    with pytest.raises(GotdInputError, match="paper"):
        preset_options("papr", "ot")
