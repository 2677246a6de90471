#!/usr/bin/env bash
# Installs NVRTC 13.0, the CUDA 13.0 headers and ptxas from PyPI into `.venv-cuda` at the
# repository root, so kernels can be compiled (and assembled for sm_90) without a GPU or
# a system CUDA toolkit. Idempotent: re-running only re-checks the pinned versions.
#
# NVRTC is pinned to 13.0.x because the GPU machine's driver (CUDA 13.0) accepts PTX ISA
# up to 9.0; a newer NVRTC emits PTX that driver rejects.
#
# Usage:  scripts/install-nvrtc.sh            # installs, then prints export lines
#         eval "$(scripts/install-nvrtc.sh --exports)"   # installs quietly, sets env
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv-cuda"
python="${PYTHON:-python3}"

log() { echo "install-nvrtc: $*" >&2; }

if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    "$python" -m venv "$venv"
fi

packages=(
    "nvidia-cuda-nvrtc==13.0.88"
    "nvidia-cuda-runtime==13.0.*"
    "nvidia-cuda-nvcc==13.0.*"
)
# pip is a no-op when the pinned versions are already present.
log "installing ${packages[*]}"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${packages[@]}" >&2

cu13="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
for sub in lib include bin; do
    if [[ ! -d "$cu13/$sub" ]]; then
        log "expected $cu13/$sub after install, not found"
        exit 1
    fi
done
if [[ ! -x "$cu13/bin/ptxas" ]]; then
    log "ptxas not found under $cu13/bin"
    exit 1
fi

exports="export LD_LIBRARY_PATH=\"$cu13/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\"
export ARBOR_CUDA_INCLUDE=\"$cu13/include\"
export PATH=\"$cu13/bin:\$PATH\""

if [[ "${1:-}" == "--exports" ]]; then
    echo "$exports"
else
    log "done; to use it in this shell run:"
    echo "$exports"
fi
