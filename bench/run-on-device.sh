#!/bin/bash
# Everything the CUDA backend needs checked, in one call on the GPU machine (one H200,
# CUDA 13 with cuBLAS, torch + transformers + peft, no Node): build both addons, backend
# consistency (CUDA ops vs CPU references), the HF-fixture parity tests on the CUDA build,
# then the benchmark against transformers + PEFT, and a short table last.
#
# Through the device tool, from the repository root, after `bash ../shared/device/make-kit.sh`
# and `tar cJf .device-kit/deps.tar.xz <cmake-js, node-addon-api, node-api-headers, tsx, zod
# and their dependencies>` here:
#   command: bash bench/run-on-device.sh        carry: [".device-kit", "node_modules/@huggingface/tokenizers"]
# (SKIP_BENCH=1: build, consistency, fp32 and bf16 parity only.)
# Results land in $OUT/results.tar.gz (bench.json, the logs); copy bench.json to bench/results/.
set -uo pipefail
OUT=${OUT:-/tmp/adapterlens-out}
R=$(mktemp -d)
WORK=${BENCH_WORK:-/tmp/adapterlens-bench}
status=0
step() { echo; echo "== $* ($(date +%T))"; }
finish() { tar czf "$OUT/results.tar.gz" -C "$R" . 2>/dev/null; }
trap finish EXIT

tar xJf .device-kit/node.tar.xz -C /tmp && export PATH=/tmp/node/bin:$PATH
[ -d node_modules/cmake-js ] || tar xJf .device-kit/deps.tar.xz
export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)

step "build (CPU and CUDA addons, backend consistency test)"
node node_modules/cmake-js/bin/cmake-js compile --directory native --out native/build > "$R/build.log" 2>&1 || { tail -40 "$R/build.log"; exit 1; }
grep -E "CUDA toolkit|warning" "$R/build.log" | head -20
ls native/build/Release/*.node

step "backend consistency (CUDA ops vs CPU references)"
./native/build/adapterlens_backend_ops | tee "$R/backend_ops.log" || status=1

step "HF-fixture parity on the CUDA build (fp32)"
ADAPTERLENS_TEST_DEVICE=cuda timeout 300 node --import tsx --test --test-reporter=spec \
  tests/parity/engine-parity.test.ts tests/parity/strategies-parity.test.ts tests/parity/decode-batch.test.ts > "$R/parity.log" 2>&1 || status=1
grep -E "^# (pass|fail)|parity figures|✖|Error" "$R/parity.log" | head -30
sed -n '/parity figures/,/^$/p' "$R/parity.log" | head -20
grep "batched decode (cuda) vs" "$R/parity.log" 

step "bf16: reference from transformers in bf16, CUDA bf16 parity, --dtype reaching the engine"
python3 tests/reference/make_bf16_reference.py 2>&1 | grep -v -e Warning -e warn | tee "$R/bf16-reference.log" | tail -6
mkdir -p "$R/bf16-reference" && cp tests/fixtures/reference/bf16.json tests/fixtures/reference/bf16.safetensors "$R/bf16-reference/" 2>/dev/null
ADAPTERLENS_TEST_DEVICE=cuda timeout 200 node --import tsx --test --test-reporter=spec \
  tests/parity/bf16-parity.test.ts tests/compare/session-dtype.test.ts > "$R/bf16.log" 2>&1 || status=1
grep -E "^# (pass|fail|skip)|✖|Error" "$R/bf16.log" | head -20
sed -n '/bf16 parity figures/,/^$/p' "$R/bf16.log" | head -10

[ "${SKIP_BENCH:-0}" = 1 ] && exit $status
step "benchmark: checkpoint, adapters, document, ceilings"
python3 bench/hf_bench.py make --work "$WORK" 2>&1 | grep -v -e Warning -e warn | tail -5
step "benchmark: AdapterLens (CUDA, bf16)"
timeout 300 node --import tsx bench/adapterlens-bench.ts "$WORK" "$R/adapterlens.json" bf16 2>&1 | tee "$R/adapterlens.log" | tail -8
step "benchmark: transformers + PEFT"
timeout 400 python3 bench/hf_bench.py run --work "$WORK" --out "$R/hf.json" 2>&1 | grep -v -e Warning -e warn | tail -5
step "profile: one more AdapterLens pass with a CUDA event around every op (not the measured run)"
ADAPTERLENS_CUDA_PROFILE=1 timeout 200 node --import tsx bench/adapterlens-bench.ts "$WORK" "$R/profiled.json" bf16 > "$R/profile.log" 2>&1
grep "cuda profile" "$R/profile.log" | grep "one sequence" | tail -1 | sed 's/ · /\n   /g'
grep "cuda profile" "$R/profile.log" | grep " rows" | tail -1 | sed 's/ · /\n   /g'
step "the same pass with the decode graph off (ADAPTERLENS_CUDA_GRAPH=0: one launch per op)"
ADAPTERLENS_CUDA_GRAPH=0 timeout 200 node --import tsx bench/adapterlens-bench.ts "$WORK" "$R/no-graph.json" bf16 2>&1 | grep "end-to-end"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('decode step median without the graph: %.2f ms' % d['decodeStepMsMedian'])" "$R/no-graph.json"
step "table"
python3 bench/summarize.py "$WORK" "$R/adapterlens.json" "$R/hf.json" "$R/bench.json" || status=1
exit $status
