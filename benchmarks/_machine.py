"""One line about the machine a benchmark ran on, printed with every table: the CPU, its cores, and
the instruction sets that decide which precision is fast (AVX2; AVX-512; AVX512-BF16 and AMX, the
bfloat16 matrix units), torch's thread count, and the GPU when the benchmark runs on one."""

from __future__ import annotations

import os

import torch

from mtlrec.device import BF16_FLAGS, cpu_info

FLAGS = ("avx2", "avx512f", *BF16_FLAGS, "amx_tile")


def cpu_line() -> str:
    model, flags = cpu_info()
    have = [f for f in FLAGS if f in flags] or ["none of " + ", ".join(FLAGS)]
    return (f"machine: {model}, {os.cpu_count()} cores, flags {' '.join(have)}; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip


def gpu_line(device: torch.device) -> str:
    """The GPU's name, memory and CUDA version (for a table measured on ``device``)."""
    props = torch.cuda.get_device_properties(device)
    return (f"gpu: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, "
            f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")  # fmt: skip
