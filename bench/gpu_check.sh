#!/usr/bin/env bash
# GPU check: runs the attention benchmark and the ViT throughput benchmark on a CUDA machine and
# prints their tables. Needs torch, lightning and timm; hydra-core/omegaconf are installed from the
# wheels in bench/wheels when missing (no network needed).
#   bash bench/gpu_check.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import hydra, omegaconf" 2>/dev/null; then
  echo "== installing hydra-core and omegaconf from bench/wheels (offline)"
  $PY -m pip install -q --no-index --find-links bench/wheels hydra-core omegaconf
fi
$PY - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0))
PY
DEVICE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
echo "== bench/attention.py ($DEVICE)"
$PY bench/attention.py --device "$DEVICE" --sizes 256 1024 4096 --long 4096 16384
echo "== bench/vit_throughput.py ($DEVICE)"
$PY bench/vit_throughput.py --device "$DEVICE"
