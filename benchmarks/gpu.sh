#!/usr/bin/env bash
# GPU benchmark and checks, in one command (for a machine with one CUDA GPU and JAX).
#   bash benchmarks/gpu.sh [OUTDIR]
# Runs the Pallas tests with the real Triton kernel, then the gpu_pop workloads
# (10k, 100k, 1M HH neurons, 100 ms, spike summaries only) with the fused kernel
# (backend="auto") and the XLA loop, in float32, and writes OUTDIR/gpu.json.
# Missing Python packages (saiunit, ...) can be installed from wheels in .whl/ first.
set -eo pipefail
out=${1:-${OUT:-.}}
if compgen -G ".whl/*.whl" > /dev/null; then
  site=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH=$site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv || true
python3 -m pytest tests/test_pallas.py -q -p no:cacheprovider -o addopts="" 2>&1 | tee "$out/pallas_tests.log"
python3 benchmarks/run.py --quick --gpu --f32 --only gpu_pop10k gpu_pop100k gpu_pop1m pop1k --json "$out/gpu.json" 2>&1 | tee "$out/gpu_bench.log"
