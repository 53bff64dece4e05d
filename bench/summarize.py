"""Joins the two sides of the benchmark with the ceilings measured in the same run, writes
bench.json and prints the short table (bench/run-on-device.sh calls it last)."""
import datetime
import json
import sys

work, al_path, hf_path, out_path = sys.argv[1:5]
ceil = json.load(open(f"{work}/ceilings.json"))
al = json.load(open(al_path))
hf = json.load(open(hf_path))

H, L, I, V, heads, hd = 4096, 32, 11008, 32000, 32, 128
T = al["documentTokens"] - 1
ds = 2 if al["dtype"] != "fp32" else 4
# Decode floor: every weight matrix is read once per step (the embedding table only for
# the fed rows); the adapters' A and B too. KV reads are listed apart.
weights_read = al["modelBytes"] - V * H * ds + al["adapterBytes"] // 4 * ds
floor_ms = weights_read / ceil["copyBytesPerSecond"] * 1e3
kv_read = al["batch"] * 2 * L * heads * hd * (T + al["newTokens"] / 2) * ds
floor_kv_ms = (weights_read + kv_read) / ceil["copyBytesPerSecond"] * 1e3
# Prefill FLOPs: every Linear of every layer (no lm_head: prefill asks for no logits) plus
# causal attention (QKᵀ and PV over T(T+1)/2 pairs per head).
linear_flops = 2 * T * L * (4 * H * H + 3 * H * I)
attn_flops = 4 * L * heads * hd * T * (T + 1) / 2
prefill_rate = (linear_flops + attn_flops) / al["basePrefillSeconds"]

same = sum(1 for k, v in al["tokens"].items() if hf["tokens"].get(k) == v)
first_diff = {}
for k, v in al["tokens"].items():
    h = hf["tokens"].get(k, [])
    first_diff[k] = next((i for i, (a, b) in enumerate(zip(v, h)) if a != b), None)

res = {
    "date": datetime.date.today().isoformat(),
    "device": al["device"],
    "dtype": al["dtype"],
    "workload": {"shape": "Llama-2-7B (hidden 4096, 32 layers, 32 heads, intermediate 11008, vocab 32000)",
                 "adapters": ["q/v r=8", "q/v r=16", "q/k/v/o r=64"], "documentTokens": al["documentTokens"],
                 "strategies": ["exact", "base", "seed-minikv", "delta-int8"], "newTokens": al["newTokens"],
                 "batch": al["batch"]},
    "ceilings": ceil,
    "endToEnd": {"adapterlensSeconds": al["endToEndSeconds"], "hfSeconds": hf["endToEndSeconds"],
                 "ratio": hf["endToEndSeconds"] / al["endToEndSeconds"], "target": 20},
    "decodeStep": {"medianMs": al["decodeStepMsMedian"], "floorMs": floor_ms, "ratioToFloor": al["decodeStepMsMedian"] / floor_ms,
                   "weightBytesPerStep": weights_read, "floorWithKvMs": floor_kv_ms, "target": 1.5},
    "prefill": {"baseSeconds": al["basePrefillSeconds"], "tokensPerSecond": T / al["basePrefillSeconds"],
                "flopsPerSecond": prefill_rate, "fractionOfGemmRate": prefill_rate / ceil["bf16GemmFlops"],
                "hfBaseSeconds": hf["basePrefillSeconds"], "target": 0.5},
    "memory": {"adapterlensPeakDeviceBytes": al["peakDeviceBytes"], "hfPeakAllocatedBytes": hf["peakDeviceBytes"]},
    "storeBytes": al["storeBytes"],
    "greedyAgreement": {"sequencesIdentical": same, "of": len(al["tokens"]), "firstDifference": first_diff},
    "adapterlens": al, "hf": hf,
}
json.dump(res, open(out_path, "w"), indent=1)

g = lambda b: f"{b / 2**30:.2f} GiB"
print(f"\nbenchmark ({res['date']}, {al['device']}, {al['dtype']})")
print(f"  end-to-end          AdapterLens {al['endToEndSeconds']:.3f} s   HF+PEFT {hf['endToEndSeconds']:.2f} s   ratio {res['endToEnd']['ratio']:.1f}x (target >= 20x)")
print(f"  decode step (b={al['batch']})  {al['decodeStepMsMedian']:.2f} ms   floor {floor_ms:.2f} ms (weights {g(weights_read)} / copy {ceil['copyBytesPerSecond']/1e12:.2f} TB/s)   {res['decodeStep']['ratioToFloor']:.2f}x (target <= 1.5x); floor with KV reads {floor_kv_ms:.2f} ms")
print(f"  prefill ({T} tok)   {al['basePrefillSeconds']*1e3:.1f} ms = {prefill_rate/1e12:.0f} TFLOP/s   bf16 GEMM {ceil['bf16GemmFlops']/1e12:.0f} TFLOP/s   {100*res['prefill']['fractionOfGemmRate']:.0f}% (target >= 50%)")
print(f"  peak device memory  AdapterLens {g(al['peakDeviceBytes'] or 0)} (process, incl. context)   HF {g(hf['peakDeviceBytes'])} (torch allocated)")
ex = al["storeBytes"]
for a in ["qv-r8", "qv-r16", "qkvo-r64"]:
    e = ex[f"{a}/exact"]
    print(f"  bytes {a:<9} " + "  ".join(f"{s} {ex[f'{a}/{s}']/2**20:.1f} MiB ({ex[f'{a}/{s}']/e:.3f})" for s in ["exact", "base", "seed-minikv", "delta-int8"]))
print(f"  greedy tokens identical to HF: {same}/{len(al['tokens'])} sequences")
