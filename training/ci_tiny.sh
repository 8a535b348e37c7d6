#!/usr/bin/env bash
# A tiny real training and export on a prepared dataset, for CI:
#   training/ci_tiny.sh <data dir> <out dir> [more train.py arguments, e.g. --features one-layer]
# Trains 1 epoch on the first 300 training captions at D=64 (into <out>/run, started afresh), validates on
# the dataset's val split, exports to <out>/export (ONNX + vocab + manifest + fixtures; the export checks
# the ONNX files with onnx.checker and against PyTorch in onnxruntime). Sets up training/.venv first.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: training/ci_tiny.sh <data dir> <out dir> [train.py arguments]" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="$1"
out="$2"
shift 2
[ -f "$data/meta.json" ] || { echo "ci_tiny: $data holds no prepared dataset (meta.json missing)" >&2; exit 2; }

"$root/scripts/setup-training.sh"
py="$root/training/.venv/bin/python"
data="$(cd "$data" && pwd)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
rm -rf -- "$out/run" "$out/export"

cd "$root"
"$py" -m training.train --data "$data" --out "$out/run" --max-captions 300 --epochs 1 --dim 64 \
  --threads "${SAGASU_TRAIN_THREADS:-2}" "$@"
"$py" -m training.export --run "$out/run" --out "$out/export"
echo "ci_tiny: ok ($out/run, $out/export)"
