#!/usr/bin/env bash
# GPU benchmark and checks, in one command (for a machine with one CUDA GPU and JAX).
#   bash benchmarks/gpu.sh [OUTDIR]
# 1. benchmarks/run.py on the gpu_pop workloads (10k, 100k, 1M HH neurons, 100 ms,
#    spike summaries only) and pop1k, float32, against Jaxley in the same run
#    -> OUTDIR/gpu.json;
# 2. benchmarks/gpu_kernel.py: where the fused kernel's time goes (variants at 1M)
#    -> OUTDIR/gpu_kernel.json;
# 3. the Pallas tests with the real Triton kernel.
# About 2.5 minutes on an H200 (2026-11-30), 6.5 at most (the stages' limits).
# benchmarks/cells.py (batches of branched cells) is not part of it: its first batch, one
# tree1k cell for 12 ms, had not finished within 60 s there (each step's tree solve is
# sequential, node by node).
# Each stage has a time limit; the script goes on after a failed stage and exits
# non-zero if any failed. Missing Python packages (saiunit, jaxley, ...) are installed
# from wheels in .whl/ first, if there are any.
set -o pipefail
out=${1:-${OUT:-.}}
if compgen -G ".whl/*.whl" > /dev/null; then
  site=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH=$site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
status=0
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to OUTDIR/NAME.log
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - t0))s"
  [ $rc -eq 0 ] || status=1
  return $rc
}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv || true
python3 -c "import jax, jaxlib, equinox, diffrax, optax; print('jax', jax.__version__, jax.devices(), 'equinox', equinox.__version__, 'diffrax', diffrax.__version__)"
pytest="python3 -m pytest -q -p no:cacheprovider -o addopts= -rA"
stage gpu_bench 170 python3 benchmarks/run.py --quick --gpu --f32 \
  --only gpu_pop1m gpu_pop100k gpu_pop10k pop1k --json "$out/gpu.json"
stage gpu_kernel 120 python3 benchmarks/gpu_kernel.py --json "$out/gpu_kernel.json"
stage pallas_tests 100 $pytest tests/test_pallas.py tests/test_native_exp.py
exit $status
