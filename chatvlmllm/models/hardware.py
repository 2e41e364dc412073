"""Hardware probe: what this machine can run (device, VRAM, bf16, flash-attn that really runs)."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
from dataclasses import asdict, dataclass
from typing import Any

from chatvlmllm.i18n import N_


@dataclass(frozen=True)
class HardwareProfile:
    device: str  # "cuda" | "mps" | "cpu"
    gpu_name: str | None = None
    compute_capability: tuple[int, int] | None = None
    vram_total_gb: float | None = None
    vram_free_gb: float | None = None
    bf16_supported: bool = False
    torch_version: str | None = None
    cuda_version: str | None = None
    torchvision_available: bool = False
    flash_attn_version: str | None = None
    flash_attn_usable: bool = False
    # In English (the profile is JSON); the fixed reasons are marked, so a page shows them with `_()`.
    flash_attn_reason: str = N_("flash-attn is not installed")
    bitsandbytes_available: bool = False
    cpu_count: int = 1
    ram_total_gb: float | None = None
    simulated: bool = False

    @property
    def capability_str(self) -> str | None:
        cc = self.compute_capability
        return f"{cc[0]}.{cc[1]}" if cc else None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["compute_capability"] = self.capability_str
        return data

    def summary(self) -> str:
        if self.device == "cuda":
            vram = f"{self.vram_total_gb:.1f} GB" if self.vram_total_gb else "? GB"
            return f"{self.gpu_name or 'GPU'} (sm_{self.capability_str}, {vram})"
        return self.device.upper()


def _ram_total_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def torchvision_available() -> bool:
    """True only if torchvision imports; a broken install counts as absent."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


def probe_flash_attn(device: str) -> tuple[str | None, bool, str]:
    """(version, usable, reason). Usable means a tiny flash_attn_func really ran on the GPU.

    Importable is not runnable: on sm_120 (RTX 50xx) prebuilt wheels often import and
    then fail with "no kernel image is available", and ABI-mismatched wheels fail at import.
    """
    version = _package_version("flash-attn") or _package_version("flash_attn")
    if version is None and importlib.util.find_spec("flash_attn") is None:
        return None, False, N_("flash-attn is not installed")
    if device != "cuda":
        return version, False, N_("flash-attn needs a CUDA GPU")
    try:
        run_flash_attn_kernel()
    except Exception as exc:  # ImportError (ABI), RuntimeError (no kernel image), ...
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return version, False, f"flash-attn {version or '(unknown version)'} does not run on this GPU: {detail}"
    return version, True, f"flash-attn {version} ran a test kernel on this GPU"


def run_flash_attn_kernel() -> None:
    """Run one tiny causal flash-attention call on the GPU and wait for it."""
    import torch
    from flash_attn import flash_attn_func

    q = torch.randn(1, 8, 2, 64, device="cuda", dtype=torch.float16)
    flash_attn_func(q, q, q, causal=True)
    torch.cuda.synchronize()


@functools.lru_cache(maxsize=1)
def probe() -> HardwareProfile:
    """Probe once per process (the flash-attn test kernel is not free)."""
    import torch

    common: dict[str, Any] = dict(
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
        torchvision_available=torchvision_available(),
        bitsandbytes_available=importlib.util.find_spec("bitsandbytes") is not None,
        cpu_count=os.cpu_count() or 1,
        ram_total_gb=_ram_total_gb(),
    )
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info(0)
        fa_version, fa_usable, fa_reason = probe_flash_attn("cuda")
        return HardwareProfile(
            device="cuda",
            gpu_name=props.name,
            compute_capability=(props.major, props.minor),
            vram_total_gb=total / 1e9,
            vram_free_gb=free / 1e9,
            bf16_supported=torch.cuda.is_bf16_supported(),
            flash_attn_version=fa_version,
            flash_attn_usable=fa_usable,
            flash_attn_reason=fa_reason,
            **common,
        )
    fa_version, _, fa_reason = probe_flash_attn("cpu")
    mps = getattr(torch.backends, "mps", None)
    device = "mps" if mps is not None and mps.is_available() else "cpu"
    return HardwareProfile(device=device, flash_attn_version=fa_version, flash_attn_reason=fa_reason, **common)


def simulated_gpu(spec: str, assume_flash_attn: bool = False, base: HardwareProfile | None = None) -> HardwareProfile:
    """A hypothetical CUDA GPU from "CC:VRAM_GB", e.g. "12.0:16" for an RTX 5070 Ti.

    flash-attn counts as unusable unless `assume_flash_attn`: on a GPU we cannot run a
    kernel on, we cannot know that it works.
    """
    try:
        cc_text, vram_text = spec.split(":")
        major, minor = (int(x) for x in cc_text.split("."))
        vram = float(vram_text)
    except ValueError:
        raise ValueError(f"--gpu expects CC:VRAM_GB such as 12.0:16, got {spec!r}") from None
    base = base or HardwareProfile(device="cpu")
    return HardwareProfile(
        device="cuda",
        gpu_name=f"hypothetical sm_{major}{minor} GPU",
        compute_capability=(major, minor),
        vram_total_gb=vram,
        vram_free_gb=vram,
        bf16_supported=(major, minor) >= (8, 0),
        torch_version=base.torch_version,
        cuda_version=base.cuda_version,
        torchvision_available=base.torchvision_available,
        flash_attn_version=base.flash_attn_version,
        flash_attn_usable=assume_flash_attn,
        flash_attn_reason=(
            N_("assumed usable (--assume-flash-attn)")
            if assume_flash_attn
            else N_("not verified: no test kernel can run on a hypothetical GPU (pass --assume-flash-attn)")
        ),
        bitsandbytes_available=base.bitsandbytes_available,
        cpu_count=base.cpu_count,
        ram_total_gb=base.ram_total_gb,
        simulated=True,
    )
