#!/usr/bin/env bash
# Runs every CPU bench once per SIMD level this CPU has (ARBOR_SIMD=avx512|avx2|portable),
# and, when given a Python with torch, the PyTorch anchor pinned to the same instruction
# set, so each tier's ratios come from one run on one machine state. Then writes one
# markdown table of ratios, bench-results/summary.md, with the CPU model and flags on top.
#   scripts/bench-cpu.sh [TORCH_PYTHON]     e.g. scripts/bench-cpu.sh ~/torch-venv/bin/python
# Output: bench-results/<level>/<bench>.txt, bench-results/<level>/torch.txt, summary.md.
# LEVELS="avx2 portable" limits the levels; BENCH_ARGS is passed to criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${RAYON_NUM_THREADS:-$(nproc)}"
export RAYON_NUM_THREADS="$threads"
flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
has() { [[ " $flags " == *" $1 "* ]]; }
levels="${LEVELS:-}"
if [ -z "$levels" ]; then
  levels="portable"
  if has avx2 && has fma; then levels="avx2 $levels"; fi
  if has avx512f && has avx512vl && has avx512bw && has avx512dq; then levels="avx512 $levels"; fi
fi
# The PyTorch settings that keep ATen, oneDNN and MKL to one instruction set.
torch_env() {
  case "$1" in
    avx512) echo "ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX512_CORE MKL_ENABLE_INSTRUCTIONS=AVX512" ;;
    avx2) echo "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2" ;;
    *) echo "ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2" ;;
  esac
}
# matrixmultiply's GEMM picks its own instruction set (AVX-512 wherever the CPU has it);
# below AVX-512 it is pinned at build time through its MMTEST_FEATURE hook, in a target
# directory per level: scripts/simd_env.py holds the mapping the Python scripts use too.
gemm_env() { python3 scripts/simd_env.py "$1"; }
filter() { grep -v "^Gnuplot\|^Benchmarking\|Warming up\|Collecting\|Analyzing"; }
for level in $levels; do
  out="bench-results/$level"
  mkdir -p "$out"
  for b in engine loss train_step; do
    echo "== ARBOR_SIMD=$level $(gemm_env "$level") cargo bench --bench $b (RAYON_NUM_THREADS=$threads)"
    # shellcheck disable=SC2046,SC2086
    env $(gemm_env "$level") ARBOR_SIMD="$level" cargo bench --bench "$b" -- ${BENCH_ARGS:-} 2>&1 | filter | tee "$out/$b.txt"
  done
  if [ -n "${1:-}" ]; then
    echo "== PyTorch anchor, $(torch_env "$level")"
    # shellcheck disable=SC2046
    env $(torch_env "$level") THREADS="$threads" "$1" ../shared/bench/torch_anchor.py | tee "$out/torch.txt"
  fi
done
python3 scripts/bench_summary.py bench-results $levels > bench-results/summary.md.tmp
mv bench-results/summary.md.tmp bench-results/summary.md
echo "== wrote bench-results/summary.md"
