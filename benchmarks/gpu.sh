#!/usr/bin/env bash
# mtlrec's GPU checks in one go, for a machine with a CUDA GPU (about 5 minutes on one H200):
#   1. the tests that need CUDA (tests/test_cuda.py: they skip elsewhere; with two or more GPUs
#      this includes torchrun on NCCL, one GPU per process) and the device tests;
#   2. training samples/s of every model at batch sizes 2048..65536 on the GPU, float32, then MMoE
#      in bfloat16 (benchmarks/speed.py --device cuda; the GPU's name heads each table).
# Usage:  bash benchmarks/gpu.sh            (python: $PYTHON, else .venv/bin/python, else python3)
# It needs a CUDA build of the torch version pyproject.toml pins (from https://download.pytorch.org/whl/)
# and mtlrec's dependencies (pip install -e '.[dev]').
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
  f"benchmarks/gpu.sh: torch {torch.__version__} sees no CUDA device; run it on a machine with a GPU")'
"$PYTHON" -c 'import torch; print("gpu:", torch.cuda.get_device_name(), "| torch", torch.__version__,
  "| CUDA", torch.version.cuda)'

echo "== tests that need CUDA (tests/test_cuda.py) and the device tests"
timeout 300 "$PYTHON" -m pytest -p no:cacheprovider -q -rs tests/test_cuda.py tests/test_device.py

echo "== training speed on the GPU, every model, float32"
timeout 420 "$PYTHON" benchmarks/speed.py --device cuda --threads 8 --steps 30 --warmup 10 \
  --batch-sizes 2048,4096,8192,16384,32768,65536

echo "== MMoE in bfloat16 (autocast on the GPU)"
timeout 120 "$PYTHON" benchmarks/speed.py --device cuda --threads 8 --steps 30 --warmup 10 \
  --models mmoe --batch-sizes 8192,65536 --precision bfloat16
