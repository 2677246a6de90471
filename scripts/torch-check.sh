#!/usr/bin/env bash
# Weights against PyTorch, both ways (a developer-run check; needs torch, torchvision,
# safetensors and numpy in PYTHON, e.g. a throwaway venv outside the repository):
#   1. arbor -> PyTorch: ResNet-32 trained a few epochs here, exported, loaded strictly
#      into a PyTorch model with the same names, both evaluated on the same test images.
#   2. PyTorch -> arbor: a ResNet-32 trained in PyTorch, saved with save_file, `repro eval`.
#   3. ResNet-50: an arbor-trained file has exactly torchvision's state_dict names/shapes,
#      and both tools predict the same on it, and on a ResNet-50 trained in PyTorch.
#   4. torchvision's resnet50 file starts `--arch resnet50-places --freeze-backbone`.
# PyTorch's models train on those test inputs (the only images it has here): they are just
# a source of PyTorch-made weights, the comparison is of the two tools' predictions.
# The test images are synthetic-lt's test split as repro feeds them to the model,
# written by `repro eval --save-inputs` (normalised F32 tensors).
#
# Usage: PYTHON=/path/to/venv/bin/python scripts/torch-check.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
W="${1:-$(mktemp -d)}"
mkdir -p "$W"
cargo build --release --bin repro
R=target/release/repro
CHECK="$PY scripts/torch_weights_check.py"
# IF 10 and cross-entropy so that a few epochs give a model with varied predictions (a
# model that predicts one class for everything would agree trivially).
DATA=(--dataset synthetic-lt --classes 10 --synthetic-max 500 --imb 10 --seed 0 --threads 2)
SMALL=(--dataset synthetic-lt --classes 4 --synthetic-max 40 --imb 10 --seed 0 --threads 2)

echo "== 1. arbor ResNet-32 -> PyTorch"
$R train --arch resnet32 --loss ce --epochs 6 --batch 64 --lr 0.05 --schedule cosine --eval-every 6 \
    "${DATA[@]}" --out "$W/r32" --quiet --force
$R export "$W/r32" --out "$W/r32.safetensors"
$R eval --weights "$W/r32.safetensors" "${DATA[@]}" --out "$W/r32-arbor" \
    --save-inputs "$W/inputs.safetensors"
$CHECK eval --weights "$W/r32.safetensors" --inputs "$W/inputs.safetensors" --out "$W/r32-torch.csv"
$CHECK compare "$W/r32-arbor/predictions.csv" "$W/r32-torch.csv"

echo "== 2. PyTorch ResNet-32 -> arbor"
$CHECK train --arch resnet32 --classes 10 --inputs "$W/inputs.safetensors" --out "$W/t32.safetensors" --lr 0.02
$R eval --weights "$W/t32.safetensors" "${DATA[@]}" --out "$W/t32-arbor"
$CHECK eval --weights "$W/t32.safetensors" --inputs "$W/inputs.safetensors" --out "$W/t32-torch.csv"
$CHECK compare "$W/t32-arbor/predictions.csv" "$W/t32-torch.csv"

echo "== 3. arbor ResNet-50 = torchvision's state_dict"
$R train --arch resnet50 --loss ce --epochs 1 --batch 32 --lr 0.01 --schedule cosine "${SMALL[@]}" \
    --out "$W/r50" --quiet --force
$R export "$W/r50" --out "$W/r50.safetensors"
$CHECK names --weights "$W/r50.safetensors"
$R eval --weights "$W/r50.safetensors" "${SMALL[@]}" --out "$W/r50-arbor" \
    --save-inputs "$W/inputs-small.safetensors"
$CHECK eval --weights "$W/r50.safetensors" --inputs "$W/inputs-small.safetensors" --out "$W/r50-torch.csv"
$CHECK compare "$W/r50-arbor/predictions.csv" "$W/r50-torch.csv"
$CHECK train --arch resnet50 --classes 4 --inputs "$W/inputs-small.safetensors" --out "$W/t50.safetensors" \
    --epochs 1 --lr 0.01
$R eval --weights "$W/t50.safetensors" "${SMALL[@]}" --out "$W/t50-arbor"
$CHECK eval --weights "$W/t50.safetensors" --inputs "$W/inputs-small.safetensors" --out "$W/t50-torch.csv"
$CHECK compare "$W/t50-arbor/predictions.csv" "$W/t50-torch.csv"

echo "== 4. torchvision resnet50 -> resnet50-places, frozen backbone"
$CHECK torchvision --out "$W/tv50.safetensors"
$R train --arch resnet50-places --init-from "$W/tv50.safetensors" --freeze-backbone \
    --epochs 1 --batch 32 --schedule cosine "${SMALL[@]}" --out "$W/places" --quiet --force
echo "all PyTorch checks passed ($W)"
