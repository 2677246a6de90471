#!/usr/bin/env bash
# Prepares the tree for scripts/gpu-check.sh on a GPU machine that has no network.
# Run it here (it needs crates.io, or a warm cargo cache) before carrying the tree.
#
#   1. `cargo vendor` puts every crate of Cargo.lock into vendor/ (git-ignored);
#   2. crates that a Linux x86-64 build never compiles (Windows, macOS, wasm bindings:
#      about 230 of vendor's 340 MB) are cut down to their manifest, which cargo still
#      reads to resolve the lock file;
#   3. .cargo/config.toml (git-ignored) points crates.io at vendor/, so `cargo --offline`
#      builds from it;
#   4. both are packed into gpu-carry.tar.gz (about 25 MB; git-ignored), the one file to
#      carry: the device tool's limit is 64 MiB for everything that travels, which vendor/
#      unpacked would exceed.
#
# With --binaries it instead builds, here, the release programs gpu-check.sh runs (the GPU
# test executables, gpu_bench, repro) into gpu-bin/ and packs only those: for a GPU
# machine without a Rust toolchain (the H200 image's description lists none), and it
# spares that machine's time the build. They are x86-64 Linux programs; repro also needs
# libfontconfig and libfreetype there.
#
# Usage: scripts/vendor.sh [--binaries]      then carry gpu-carry.tar.gz
#        scripts/vendor.sh --clean           removes vendor/, .cargo/config.toml, gpu-bin/
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "vendor: $*" >&2; }

if [[ "${1:-}" == "--clean" ]]; then
    rm -rf vendor gpu-bin gpu-carry.tar.gz .cargo/config.toml
    rmdir .cargo 2>/dev/null || true
    exit 0
fi

if [[ "${1:-}" == "--binaries" ]]; then
    log "building the release programs into gpu-bin/ (no debug info, stripped)"
    rm -rf gpu-bin
    mkdir -p gpu-bin/tests
    export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
    cargo build --locked --release --features cuda --bin gpu_bench --bin repro
    cp target/release/gpu_bench target/release/repro gpu-bin/
    # The test executables that touch the GPU: all of the kernel crate's, the engine's unit
    # tests and CPU-vs-CUDA tests, and the root package's ResNet step on both devices.
    {
        cargo test --locked --release --features cuda --no-run -p arbor-cuda -p arbor-engine \
            --message-format=json
        cargo test --locked --release --features cuda --no-run --test cuda_resnet_step \
            --message-format=json
    } |
        python3 -c '
import json, shutil, sys
for line in sys.stdin:
    msg = json.loads(line)
    exe, target = msg.get("executable"), msg.get("target", {})
    if msg.get("reason") != "compiler-artifact" or not exe or not msg["profile"]["test"]:
        continue
    unit = target["kind"] == ["lib"]
    if "arbor-cuda" in msg["package_id"] or unit or target["name"] in ("cuda_ops", "cuda_resnet_step"):
        shutil.copy(exe, "gpu-bin/tests/" + target["name"] + ("-unit" if unit else ""))
'
    tar -czf gpu-carry.tar.gz gpu-bin
    log "done: $(du -h gpu-carry.tar.gz | cut -f1) to carry (gpu-bin/: $(ls gpu-bin/tests | wc -l) test programs)"
    exit 0
fi

log "cargo vendor -> vendor/"
# From crates.io itself, not from an earlier run's vendor/.
rm -rf vendor .cargo/config.toml
cargo vendor --locked --versioned-dirs vendor >/dev/null

# Which vendored crates a Linux x86-64 build of everything (tests, benches, the cuda
# feature) compiles, as `name-version` (the --versioned-dirs folder names).
needed="$(cargo tree --locked --offline --target x86_64-unknown-linux-gnu --workspace \
    --features cuda -e normal,build,dev --prefix none --format '{p}' |
    awk '{ sub(/^v/, "", $2); print $1 "-" $2 }' | sort -u)"
stubbed=0
for dir in vendor/*/; do
    crate="$(basename "$dir")"
    if grep -qxF "$crate" <<<"$needed"; then
        continue
    fi
    # Keep the manifest (cargo reads it to resolve the lock file), drop everything else,
    # and give cargo an empty file list to verify.
    find "$dir" -mindepth 1 -maxdepth 1 ! -name Cargo.toml ! -name .cargo-checksum.json \
        -exec rm -rf {} +
    mkdir -p "$dir/src"
    : >"$dir/src/lib.rs"
    python3 - "$dir/.cargo-checksum.json" <<'EOF'
import json, sys
path = sys.argv[1]
sums = json.load(open(path))
sums["files"] = {}
json.dump(sums, open(path, "w"))
EOF
    stubbed=$((stubbed + 1))
done
log "cut $stubbed crates that a Linux x86-64 build never compiles down to their manifests"

mkdir -p .cargo
cat >.cargo/config.toml <<'EOF'
# Written by scripts/vendor.sh: build from vendor/ (crates.io is not reachable on the GPU
# machine). `scripts/vendor.sh --clean` removes it.
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
EOF
log "checking that the workspace resolves from vendor/ alone"
cargo metadata --offline --locked --format-version 1 >/dev/null

log "packing vendor/ and .cargo/config.toml into gpu-carry.tar.gz"
tar -czf gpu-carry.tar.gz vendor .cargo/config.toml
log "done: $(du -h gpu-carry.tar.gz | cut -f1) to carry. On the GPU machine:"
echo "    scripts/gpu-check.sh \"\$OUT\"    (with gpu-carry.tar.gz named in the device tool's carry)"
