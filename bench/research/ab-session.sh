#!/bin/bash
# The session workload (4 strategies, all 8) once per setting, for A/B comparisons of engine
# switches on the GPU machine, after bench/run-on-device.sh made the fixtures (its WORK):
#   bash bench/research/ab-session.sh
# A/B runs of the session workload after run-on-device.sh (PATH for the kit's node).
export PATH=/tmp/node/bin:$PATH
W=/tmp/adapterlens-bench
ab() {  # label, env...
  local label=$1; shift
  env "$@" timeout 120 node --import tsx bench/runner-bench.ts session $W /tmp/ab-$label.json > /tmp/ab-$label.log 2>&1 || tail -3 /tmp/ab-$label.log
  python3 - "$label" <<'PY'
import json, sys
l = sys.argv[1]
d = json.load(open(f'/tmp/ab-{l}.json'))
f, a = d['fourStrategies'], d['allStrategies']
print(f"{l:24s} four {f['seconds']:.3f} s (step {f['decodeStepMs']:.2f} ms, generate {f['stages']['generate']*1e3:.0f} ms)  all8 {a['seconds']:.3f} s (encode {a['stages']['encode']*1e3:.0f} ms, generate {a['stages']['generate']*1e3:.0f} ms, step {a['decodeStepMs']:.2f} ms)")
PY
}
ab default
ab attn-branches ADAPTERLENS_CUDA_ATTN_BRANCHES=1
ab no-lora-branch ADAPTERLENS_CUDA_LORA_BRANCH=0
ab lowrank-1g ADAPTERLENS_LOWRANK_BATCH_BYTES=1073741824
