"""Hardware probe on this (CPU) machine, the flash-attn probe's verdicts, hypothetical GPUs."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from chatvlmllm.models import hardware
from chatvlmllm.models.hardware import probe, probe_flash_attn, simulated_gpu


def test_probe_on_this_machine():
    import torch

    hw = probe()
    assert hw.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert hw.torch_version == torch.__version__
    assert hw.cpu_count >= 1 and hw.ram_total_gb and hw.ram_total_gb > 1
    assert hw.torchvision_available == (importlib.util.find_spec("torchvision") is not None)
    if hw.device == "cpu":
        assert not hw.flash_attn_usable
        assert hw.compute_capability is None
    assert probe() is hw  # probed once per process


def _fake_flash_attn(monkeypatch, version="2.8.3"):
    module = types.ModuleType("flash_attn")
    module.__version__ = version
    monkeypatch.setitem(sys.modules, "flash_attn", module)
    monkeypatch.setattr(hardware, "_package_version", lambda name: version)


def test_flash_attn_not_installed(monkeypatch):
    monkeypatch.setattr(hardware, "_package_version", lambda name: None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert probe_flash_attn("cuda") == (None, False, "flash-attn is not installed")


def test_flash_attn_needs_cuda(monkeypatch):
    _fake_flash_attn(monkeypatch)
    version, usable, reason = probe_flash_attn("cpu")
    assert (version, usable) == ("2.8.3", False)
    assert "CUDA" in reason


def test_importable_but_no_kernel_image_is_not_usable(monkeypatch):
    """The RTX 50xx case: the wheel imports, the kernel has no sm_120 code."""
    _fake_flash_attn(monkeypatch)

    def no_kernel():
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device\nmore")

    monkeypatch.setattr(hardware, "run_flash_attn_kernel", no_kernel)
    _version, usable, reason = probe_flash_attn("cuda")
    assert not usable
    expected = "CUDA error: no kernel image is available for execution on the device"
    assert reason == f"flash-attn 2.8.3 does not run on this GPU: {expected}"


def test_abi_mismatch_is_not_usable(monkeypatch):
    _fake_flash_attn(monkeypatch)

    def abi_error():
        raise ImportError("flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDeviceEi")

    monkeypatch.setattr(hardware, "run_flash_attn_kernel", abi_error)
    _, usable, reason = probe_flash_attn("cuda")
    assert not usable and "undefined symbol" in reason


def test_kernel_that_runs_is_usable(monkeypatch):
    _fake_flash_attn(monkeypatch)
    monkeypatch.setattr(hardware, "run_flash_attn_kernel", lambda: None)
    assert probe_flash_attn("cuda") == ("2.8.3", True, "flash-attn 2.8.3 ran a test kernel on this GPU")


def test_simulated_gpu():
    hw = simulated_gpu("12.0:16")
    assert (hw.device, hw.compute_capability, hw.vram_total_gb, hw.bf16_supported) == ("cuda", (12, 0), 16.0, True)
    assert hw.simulated and not hw.flash_attn_usable
    assert "--assume-flash-attn" in hw.flash_attn_reason
    assert simulated_gpu("7.5:16").bf16_supported is False
    assert simulated_gpu("8.6:24", assume_flash_attn=True).flash_attn_usable
    assert hw.to_dict()["compute_capability"] == "12.0"


@pytest.mark.parametrize("bad", ["12:16", "12.0", "x.y:16", "12.0:big"])
def test_simulated_gpu_rejects_bad_spec(bad):
    with pytest.raises(ValueError, match="CC:VRAM_GB"):
        simulated_gpu(bad)
