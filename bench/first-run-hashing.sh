#!/bin/bash
# A fresh process's first run on files never hashed before, through `adapterlens compare`
# (the product's path), on the CPU: the demo's model folder plus PAD_MB of extra bytes to hash
# (a stand-in for a checkpoint that takes seconds to hash), a fresh digest cache each run.
# Prints the wall time and the report's stage timings; `digests` is how long the report
# waited for the SHA-256 after the comparison itself was done.
#
#   bash bench/first-run-hashing.sh [CHECKOUT ...]      (default: this checkout; PAD_MB=1500 RUNS=3)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
roots=("${@:-$here}")
pad=${PAD_MB:-1500}
runs=${RUNS:-3}
demo=$here/models/demo
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$demo/base" "$work/base"
head -c $((pad * 1000000)) /dev/urandom > "$work/base/padding.model"  # *.model files are hashed (SentencePiece)
cat "$work/base/padding.model" > /dev/null                             # in the page cache: hashing, not the disk
for ((i = 1; i <= runs; i++)); do
  for root in "${roots[@]}"; do
    data=$(mktemp -d -p "$work")
    start=$(date +%s.%N)
    XDG_DATA_HOME=$data node "$root/bin/adapterlens.mjs" compare --model "$work/base" \
      --adapter "$demo/adapters/moby-dick-all-linear-r16" --adapter "$demo/adapters/sotu-1800s-rslora-r16" --adapter "$demo/adapters/sotu-modern-qv-r8" \
      --document "$demo/documents/demo-moby-dick.txt" --prompt " At one time she would" --strategies exact,base,seed-minikv,delta-int8 \
      --max-new-tokens 32 --json "$data/report.json" > "$data/out.txt" 2>&1
    end=$(date +%s.%N)
    python3 - "$data/report.json" "$root" "$start" "$end" <<'PY'
import json, sys
report, root, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
t = {s['stage']: round(s['ms'] / 1000, 2) for s in json.load(open(report))['timings']}
print(f"{root}: wall {end - start:.2f} s; " + ", ".join(f"{k} {v}" for k, v in t.items()))
PY
  done
done
