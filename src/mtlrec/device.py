"""Where a model runs and in which precision: ``train.device`` (``auto | cpu | cuda | cuda:N``) and
``train.precision`` (``auto | float32 | bfloat16``) resolved against this machine, in one place.

``auto`` device: the first CUDA device when torch sees one, else the CPU. ``auto`` precision:
bfloat16 autocast where the hardware multiplies bfloat16 natively (a CUDA device that supports it,
or a CPU whose /proc/cpuinfo flags include ``avx512_bf16`` or ``amx_bf16``), float32 elsewhere:
on a CPU without those instructions bf16 matrix products are emulated and several times slower
than float32. The CPU flags are read here for the benchmarks' machine line too (one reader)."""

from __future__ import annotations

import contextlib
import itertools
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtlrec.config import device_setting
from mtlrec.errors import ConfigError

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU instructions that multiply bfloat16 natively


def cpu_info(path: Path = CPUINFO) -> tuple[str, set[str]]:
    """(the CPU's model name, its feature flags) from /proc/cpuinfo's first processor; (the
    platform's name, no flags) where that file does not exist (macOS, Windows)."""
    model, flags = platform.processor() or platform.machine(), set()
    if path.is_file():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    return model, flags


def resolve_device(setting: str, key: str = "train.device", *, local_rank: int | None = None) -> torch.device:
    """``setting`` (auto | cpu | cuda | cuda:N) -> the device (a CUDA one with its index: ``cuda``
    is the current device, or with ``local_rank``, a torchrun process's LOCAL_RANK, that one: one
    GPU per process); a ConfigError naming ``key`` when it asks for a CUDA device this machine
    does not have."""
    try:
        device_setting(setting)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(setting)
    if device.type == "cuda" and device.index is None and local_rank is not None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}: {setting!r}, but CUDA is not available on this machine (torch "
                              f"{torch.__version__}, CUDA build {torch.version.cuda}); use auto or cpu")  # fmt: skip
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{key}: {str(device)!r}, but this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})")  # fmt: skip
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_info()[1] & set(BF16_FLAGS))


def resolve_precision(setting: str, device: torch.device) -> str:
    """``setting`` (auto | float32 | bfloat16) -> float32 or bfloat16 on ``device``."""
    if setting == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return setting


def device_name(device: torch.device) -> str:
    """The hardware's name: the GPU's, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_info()[0]


@dataclass(frozen=True)
class Placement:
    """A resolved device and precision: what a run trains on, and what it records."""

    device: torch.device
    precision: str  # float32 | bfloat16

    @classmethod
    def resolve(
        cls, device: str = "auto", precision: str = "float32", *, local_rank: int | None = None
    ) -> "Placement":
        where = resolve_device(device, local_rank=local_rank)
        return cls(where, resolve_precision(precision, where))

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on the device's type when the precision is bfloat16, else nothing."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def record(self) -> dict[str, Any]:
        """What run.json records: {"device": "cuda:0", "device_name": ..., "precision": ...}."""
        return {"device": str(self.device), "device_name": device_name(self.device), "precision": self.precision}


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for one with neither."""
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return first.device if first is not None else torch.device("cpu")
