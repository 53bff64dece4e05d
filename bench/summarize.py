"""Joins the benchmark's parts (bench/run-on-device.sh) with the ceilings measured in the same
run, writes bench.json in the result-file shape the README's table shows, and prints the table.

    python3 bench/summarize.py WORK RESULTS_DIR OUT.json
"""
import datetime
import json
import os
import sys

work, rdir, out_path = sys.argv[1:4]


def load(name):
    p = os.path.join(rdir, name)
    return json.load(open(p)) if os.path.exists(p) else None


ceil = json.load(open(os.path.join(work, "ceilings.json")))
copy = ceil["copyBytesPerSecond"]
session, hf, ladder = load("session.json"), load("hf.json"), load("ladder.json")
fresh = [f for f in (load("fresh-1.json"), load("fresh-2.json")) if f]

# Shapes (bench/hf_bench.py) and the adapters' modules and ranks.
SHAPES = {
    "llama2-7b-shape": dict(H=4096, L=32, heads=32, kvh=32, hd=128, I=11008, V=32000),
    "llama3-8b-shape": dict(H=4096, L=32, heads=32, kvh=8, hd=128, I=14336, V=128256),
}
ADAPTERS = {"qv-r8": (8, ["q", "v"]), "qv-r16": (16, ["q", "v"]), "qkvo-r64": (64, ["q", "k", "v", "o"])}


def adapter_bytes(s):
    dims = {"q": (s["H"], s["heads"] * s["hd"]), "k": (s["H"], s["kvh"] * s["hd"]), "v": (s["H"], s["kvh"] * s["hd"]),
            "o": (s["heads"] * s["hd"], s["H"])}
    return sum(s["L"] * r * (dims[m][0] + dims[m][1]) * 2 for r, mods in ADAPTERS.values() for m in mods)


def weights_read(shape, params):
    """Bytes a decode step reads: every weight matrix once (the embedding table only for the fed
    rows), the adapters' A and B too."""
    s = SHAPES[shape]
    return (params - s["V"] * s["H"]) * 2 + adapter_bytes(s)


def kv_read(shape, T):
    """Bytes of document K/V a 12-row step must read once: the base cache, each exact cache, each
    delta-int8 store (int8 + fp32 scales), each seed-minikv store."""
    s = SHAPES[shape]
    cache = T * s["L"] * 2 * s["kvh"] * s["hd"] * 2
    int8 = T * s["L"] * 2 * s["kvh"] * (s["hd"] + 4)
    seed = sum(T * s["L"] * r * 4 for r, mods in ADAPTERS.values() if "v" in mods)
    return cache + 3 * cache + 3 * int8 + seed


res = {"path": "runner", "date": datetime.date.today().isoformat(), "device": (session or {}).get("device"),
       "dtype": "bf16", "ceilings": ceil}
four = (session or {}).get("fourStrategies")
if four:
    hf_s = hf["straightforward"]["endToEndSeconds"] if hf else None
    hf_b = hf["batched"]["endToEndSeconds"] if hf else None
    res["fourStrategies"] = {"seconds": four["seconds"], "hfSeconds": hf_s, "hfBatchedSeconds": hf_b,
                             "vsHf": hf_s / four["seconds"] if hf_s else None, "vsHfBatched": hf_b / four["seconds"] if hf_b else None,
                             "stages": four["stages"], "runs": four["runs"], "documentTokens": four["documentTokens"],
                             "deviceToHostBytes": four["deviceToHostBytes"], "peakDeviceBytes": four["peakDeviceBytes"],
                             "bytes": four["bytes"], "target": 0.40}
    floor = weights_read("llama2-7b-shape", four["parameters"]) / copy * 1e3
    res["decode"] = {"stepMs": four["decodeStepMs"], "floorMs": floor, "ratio": four["decodeStepMs"] / floor, "rows": 12,
                     "documentTokens": four["documentTokens"], "target": 1.5}
alls = (session or {}).get("allStrategies")
if alls:
    res["allStrategies"] = {"seconds": alls["seconds"], "stages": alls["stages"], "runs": alls["runs"], "target": 1.0,
                            "scores": alls["scores"], "bytes": alls["bytes"]}
if fresh:
    res["freshProcess"] = {"seconds": fresh[0]["fresh"]["secondsSinceProcessStart"],
                           "secondStartSeconds": fresh[1]["fresh"]["secondsSinceProcessStart"] if len(fresh) > 1 else None,
                           "hfLoadSeconds": hf["loadSeconds"] if hf else None, "stages": fresh[0]["fresh"]["stages"],
                           "secondStartStages": fresh[1]["fresh"]["stages"] if len(fresh) > 1 else None,
                           # Process start to the engine ready (imports, hashing dispatched, probe, device).
                           "engineReadySeconds": fresh[0]["fresh"].get("engineReadySeconds")}
cli = [load(f"cli-time-{i}.json") for i in (1, 2)]
if cli[0]:
    # adapterlens compare itself (compiled, as users run it), process start to exit.
    res.setdefault("freshProcess", {})["cliSeconds"] = cli[0]["seconds"]
    res["freshProcess"]["cliSecondStartSeconds"] = cli[1]["seconds"] if cli[1] else None
if ladder:
    rows = []
    for r in ladder["longDocument"]:
        row = {k: r.get(k) for k in ("model", "tokens", "seconds", "peakDeviceBytes", "ok", "stages", "decodeStepMs", "error")}
        if r.get("ok") and r.get("decodeStepMs"):
            fl = (weights_read("llama3-8b-shape", r["parameters"]) + kv_read("llama3-8b-shape", r["tokens"])) / copy * 1e3
            row["decodeFloorMs"] = fl
            row["decodeRatio"] = r["decodeStepMs"] / fl
        rows.append(row)
    res["longDocument"] = rows
res["parts"] = {"session": session, "fresh": fresh, "hf": hf, "ladder": ladder}
json.dump(res, open(out_path, "w"), indent=1)

f = lambda x, d=2: "-" if x is None else f"{x:.{d}f}"
print(f"\nbenchmark ({res['date']}, {res['device']}, bf16) — runComparison, the code behind `adapterlens compare` and the app")
if four:
    r = res["fourStrategies"]
    print(f"  4 strategies, 3 adapters, {r['documentTokens']} tok   {f(r['seconds'], 3)} s   HF+PEFT {f(r['hfSeconds'])} s ({f(r['vsHf'], 1)}x)   "
          f"HF+PEFT mixed batch {f(r['hfBatchedSeconds'])} s ({f(r['vsHfBatched'], 1)}x)   target <= 0.40 s")
    print(f"      stages: " + ", ".join(f"{k} {v*1e3:.0f} ms" for k, v in r["stages"].items()) + f"; device→host {r['deviceToHostBytes']/2**20:.2f} MiB")
if alls:
    print(f"  all 8 strategies, every metric       {f(res['allStrategies']['seconds'], 3)} s   target <= 1.0 s")
if fresh:
    r = res["freshProcess"]
    print(f"  fresh process, first run             {f(r['seconds'])} s (second start {f(r['secondStartSeconds'])} s)   HF load {f(r['hfLoadSeconds'])} s   target <= HF load + 2 s")
if cli[0]:
    r = res["freshProcess"]
    print(f"  adapterlens compare, fresh process  {f(r['cliSeconds'])} s (second start {f(r.get('cliSecondStartSeconds'))} s)   process start to exit, compiled CLI")
if four:
    d = res["decode"]
    print(f"  decode step, 12 rows, 1k tokens      {f(d['stepMs'])} ms   floor {f(d['floorMs'])} ms   {f(d['ratio'])}x   target <= 1.5x")
if ladder:
    for r in res["longDocument"]:
        if r.get("ok"):
            extra = f"   decode {f(r.get('decodeStepMs'))} ms vs floor {f(r.get('decodeFloorMs'))} ms ({f(r.get('decodeRatio'))}x)" if r.get("decodeFloorMs") else ""
            print(f"  Llama-3-8B shape, {r['tokens']:>6} tok      {f(r['seconds'])} s   peak {r['peakDeviceBytes']/2**30:.1f} GiB{extra}")
        else:
            print(f"  Llama-3-8B shape, {r['tokens']:>6} tok      failed: {r.get('error')}")
