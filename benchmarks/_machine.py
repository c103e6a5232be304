"""One line about the machine a benchmark ran on, printed with every table: the CPU, its cores, and
the instruction sets that decide which precision is fast (AVX2; AVX-512; AVX512-BF16 and AMX, the
bfloat16 matrix units), and torch's thread count."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_line() -> str:
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    have = [f for f in FLAGS if f in flags] or ["none of " + ", ".join(FLAGS)]
    return (f"machine: {model}, {os.cpu_count()} cores, flags {' '.join(have)}; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
