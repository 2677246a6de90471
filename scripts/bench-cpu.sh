#!/usr/bin/env bash
# Runs the CPU benchmarks side by side in one session, then (when given a Python with torch)
# the PyTorch anchor, so ratios come from one run on one machine state.
#   scripts/bench-cpu.sh [TORCH_PYTHON]     e.g. scripts/bench-cpu.sh ~/torch-venv/bin/python
# Output: bench-results/<bench>.txt
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${RAYON_NUM_THREADS:-$(nproc)}"
export RAYON_NUM_THREADS="$threads"
mkdir -p bench-results
for b in engine loss train_step; do
  echo "== cargo bench --bench $b (RAYON_NUM_THREADS=$threads)"
  cargo bench --bench "$b" 2>&1 | grep -v "^Gnuplot\|^Benchmarking\|Warming up\|Collecting\|Analyzing" | tee "bench-results/$b.txt"
done
if [ -n "${1:-}" ]; then
  echo "== PyTorch anchor ($1)"
  THREADS="$threads" "$1" ../shared/bench/torch_anchor.py | tee bench-results/torch.txt
fi
