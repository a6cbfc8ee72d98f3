#!/usr/bin/env bash
# A full SuperTransformer run on one CUDA GPU, for a machine that has one (docs/training.md):
#   make gpu-corpus                      # here: pack the built corpus (runs/gpu/corpus.tar.xz, ~20 MB)
#   scripts/gpu_train.sh                 # there, in the repository root, with python3 holding CUDA torch
# It trains configs/supernet-gpu.yaml for at most MINUTES (default 7) and copies the export, its tokenizer,
# the log and the metrics to OUT (default runs/gpu-out).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-runs/gpu-out}"
mkdir -p "$out" data
if [ ! -f data/manifest.json ]; then
  tar -xJf runs/gpu/corpus.tar.xz -C data
fi
python3 - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
python3 -m search_jobs.cli supernet train --config configs/supernet-gpu.yaml --resume \
  --sitting-minutes "${MINUTES:-7}" 2>&1 | tail -n 40
cp supernet/gpu/supernet.pt supernet/gpu/spm.model runs/supernet-gpu/train.log \
  runs/supernet-gpu/metrics.jsonl "$out"/
