#!/usr/bin/env bash
# The GPU check: one script for a GPU machine with no network. It
#   1. unpacks gpu-carry.tar.gz (made here by scripts/vendor.sh) and finds CUDA's libraries;
#   2. builds from the vendored crates (`cargo --offline`), or, when the archive holds
#      prebuilt programs (`scripts/vendor.sh --binaries`), uses those;
#   3. runs the GPU tests (`cargo test --release --features cuda` of the kernel crate and
#      the engine: CPU vs CUDA for every op and the fused loss; and the root package's
#      tests/cuda_resnet_step.rs: a ResNet-8 step);
#   4. runs the GPU benchmarks (bins/gpu_bench.rs: fused loss at (512, 8142) against a
#      device-to-device copy of the same bytes, ResNet-32 training step img/s at batch 128);
#   5. trains one epoch of synthetic-LT with `repro train --device cuda`;
# and writes everything into the results folder given as $1 (default $OUT if set, else
# gpu-results/): at most 8 files, the device tool's limit on what comes back.
#
#   summary.txt  one line per step (status, seconds) and the key numbers
#   env.txt      nvidia-smi, driver/NVRTC/toolchain versions, library paths used
#   build.log    the build (vendored mode)          tests.log   every test's output
#   bench.log    gpu_bench's report                 gpu_bench.json   the same as JSON
#   train.log    the training run's output          train_results.json   its results.json
#
# A step that fails does not stop the later ones; the script exits non-zero if any failed,
# or if a GPU test skipped itself (which would mean the GPU was not found).
# Step time limits (seconds; defaults 300, 150 per test program, 90, 150) can be changed
# with BUILD_S, TEST_S, BENCH_S, TRAIN_S; the defaults keep a run inside one 10-minute
# device call. Building on that machine takes most of it: prebuilt programs spare it.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
results="${1:-${OUT:-gpu-results}}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
summary="$results/summary.txt"
: >"$summary"
failed=0

note() { echo "$*" | tee -a "$summary"; }

# step NAME LOG LIMIT_S CMD...: runs CMD with a time limit, appending its output to LOG.
step() {
    local name="$1" log="$2" limit="$3"
    shift 3
    local t0=$SECONDS
    echo "== $name: $*" >>"$log"
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    local status="ok"
    if [[ $rc -ne 0 ]]; then
        status="FAILED (exit $rc$([[ $rc -eq 124 ]] && echo ", over its ${limit}s limit"))"
        failed=1
    fi
    note "$(printf '%-28s %-40s %5ss' "$name" "$status" $((SECONDS - t0)))"
    return $rc
}

# --- 1. the carried archive and CUDA's libraries ------------------------------------
if [[ -f gpu-carry.tar.gz ]]; then
    tar -xzf gpu-carry.tar.gz
fi
# cudarc opens libcuda, libnvrtc.so.13 and libcublas.so.13 at run time: look in the
# toolkit and in the pip wheels that ship with the image's PyTorch.
lib_dirs=()
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64; do
    [[ -d "$dir" ]] && lib_dirs+=("$dir")
done
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null; then
        while IFS= read -r dir; do
            [[ -n "$dir" ]] && lib_dirs+=("$dir")
        done < <("$py" -c 'import nvidia, glob, os
for base in nvidia.__path__:
    for d in sorted(glob.glob(os.path.join(base, "*", "lib")) + glob.glob(os.path.join(base, "cu13", "lib"))):
        print(d)' 2>/dev/null)
        break
    fi
done
LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
for dir in "${lib_dirs[@]}"; do
    LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dir"
done
export LD_LIBRARY_PATH
for dir in /usr/local/cuda/include "${lib_dirs[@]/%\/lib/\/include}"; do
    if [[ -z "${ARBOR_CUDA_INCLUDE:-}" && -f "$dir/cuda_fp16.h" ]]; then
        export ARBOR_CUDA_INCLUDE="$dir"
    fi
done
[[ -d /usr/local/cuda/bin ]] && export PATH="/usr/local/cuda/bin:$PATH"
export ARBOR_CUDA_CACHE="${TMPDIR:-/tmp}/arbor-ptx-cache"
# The kernel-compile test must run here, not skip.
export ARBOR_REQUIRE_NVRTC=1

{
    echo "== nvidia-smi"
    nvidia-smi 2>&1
    echo "== versions"
    uname -a
    command -v nvcc >/dev/null && nvcc --version | tail -2
    command -v cargo >/dev/null && cargo --version && rustc --version
    echo "== paths"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    echo "ARBOR_CUDA_INCLUDE=${ARBOR_CUDA_INCLUDE:-<none found>}"
    for lib in libcuda.so.1 libnvrtc.so.13 libcublas.so.13; do
        found="$(ldconfig -p 2>/dev/null | grep -m1 "$lib" | sed 's/.*=> //')"
        for dir in "${lib_dirs[@]}"; do
            [[ -z "$found" && -e "$dir/$lib" ]] && found="$dir/$lib"
        done
        echo "$lib: ${found:-NOT FOUND}"
    done
} >"$results/env.txt" 2>&1

# --- 2. programs ---------------------------------------------------------------------
tests_log="$results/tests.log"
: >"$tests_log"
if [[ -d gpu-bin ]]; then
    note "mode: prebuilt programs from gpu-bin/"
    bench=(gpu-bin/gpu_bench)
    repro=(gpu-bin/repro)
    test_cmds=()
    for exe in gpu-bin/tests/*; do
        test_cmds+=("$exe")
    done
elif command -v cargo >/dev/null && [[ -d vendor && -f .cargo/config.toml ]]; then
    note "mode: build from vendor/ with $(cargo --version)"
    flags="--offline --locked --release --features cuda"
    step build "$results/build.log" "${BUILD_S:-300}" bash -c \
        "cargo build $flags --bin gpu_bench --bin repro && \
         cargo test $flags --no-run -p arbor-cuda -p arbor-engine && \
         cargo test $flags --no-run --test cuda_resnet_step"
    bench=(target/release/gpu_bench)
    repro=(target/release/repro)
    test_cmds=(cargo-test cargo-test-resnet)
else
    note "FAILED: no gpu-bin/ and no cargo with vendor/: run scripts/vendor.sh (or --binaries) here and carry gpu-carry.tar.gz"
    exit 1
fi

# --- 3. GPU tests ---------------------------------------------------------------------
for cmd in "${test_cmds[@]}"; do
    if [[ "$cmd" == cargo-test ]]; then
        step "tests (cargo test)" "$tests_log" "${TEST_S:-150}" \
            cargo test --offline --locked --release --features cuda --no-fail-fast \
            -p arbor-cuda -p arbor-engine -- --nocapture
    elif [[ "$cmd" == cargo-test-resnet ]]; then
        step "tests (resnet step)" "$tests_log" "${TEST_S:-150}" \
            cargo test --offline --locked --release --features cuda \
            --test cuda_resnet_step -- --nocapture
    else
        step "test $(basename "$cmd")" "$tests_log" "${TEST_S:-150}" "$cmd" --nocapture
    fi
done
skipped="$(grep -c 'SKIPPED' "$tests_log")"
if [[ "$skipped" -ne 0 ]]; then
    note "FAILED: $skipped GPU tests skipped themselves (see tests.log: the GPU or NVRTC was not found)"
    failed=1
fi
note "$(grep -h '^test result' "$tests_log" | awk '{p+=$4; f+=$6} END {printf "tests: %d passed, %d failed", p, f}')"

# --- 4. benchmarks --------------------------------------------------------------------
step "gpu_bench" "$results/bench.log" "${BENCH_S:-90}" "${bench[@]}" "$results"
grep -E 'of copy bandwidth|img/s|device copy' "$results/bench.log" | sed 's/^/    /' >>"$summary"

# --- 5. one synthetic-LT epoch on the GPU ---------------------------------------------
run_dir="${TMPDIR:-/tmp}/arbor-gpu-check-run"
rm -rf "$run_dir"
step "repro train --device cuda" "$results/train.log" "${TRAIN_S:-150}" "${repro[@]}" train \
    --dataset synthetic-lt --device cuda --epochs 1 --out "$run_dir" --quiet
if [[ -f "$run_dir/results.json" ]]; then
    cp "$run_dir/results.json" "$results/train_results.json"
    python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print("    synthetic-lt epoch: %.0f img/s, top-1 %.2f" % (r["img_per_s"], r["top1_final"]))' \
        "$results/train_results.json" >>"$summary" 2>/dev/null
fi

exit $failed
