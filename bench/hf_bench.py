"""The benchmark's transformers + PEFT peers and their fixtures, on the GPU machine.

1. `make`: the checkpoints (random bf16 weights, save_pretrained as HF saves them) with
   three PEFT adapters each (q/v r=8, q/v r=16, q/k/v/o r=64, B non-zero): a Llama-2-7B
   shape and a Llama-3-8B shape (8 KV heads, 128k vocabulary, llama3 RoPE); and the device's
   ceilings measured in this run: bf16 GEMM rate and device-to-device copy bandwidth.
2. `run`: the runner's 4-strategy workload on the 7B shape, over the same token ids the
   runner used (WORK/doc-tokens.json), two ways, each timed end to end (load excluded), and
   transformers' load of the checkpoint:
     - straightforward: base prefill, one prefill per adapter, per strategy the rebuilt cache
       (exact, base, seed-minikv with pinv mini-V per layer, delta-int8), then one `generate`
       of 32 greedy tokens per (adapter, strategy);
     - batched (the peer a skilled user would pick): the same prefills and rebuilt caches,
       then ONE `generate` over all 12 sequences, a mixed-adapter batch (PEFT's
       adapter_names=) over one batched DynamicCache.
   Writes hf.json.
"""
import argparse
import json
import os
import time

import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

ADAPTERS = {
    "qv-r8": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
    "qv-r16": dict(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]),
    "qkvo-r64": dict(r=64, lora_alpha=64, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
}
STRATEGIES = ["exact", "base", "seed-minikv", "delta-int8"]
NEW_TOKENS = 32
SHAPES = {
    "llama2-7b-shape": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                            intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
                            rope_theta=10000.0, tie_word_embeddings=False),
    "llama3-8b-shape": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                            intermediate_size=14336, vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5,
                            rope_theta=500000.0, tie_word_embeddings=False,
                            rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                              original_max_position_embeddings=8192)),
}


def sync():
    torch.cuda.synchronize()


def ceilings():
    """bf16 GEMM rate (TFLOP/s) and device-to-device copy bandwidth (bytes moved / s)."""
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    gemm = 2 * n**3 * reps / (time.perf_counter() - t)
    x = torch.empty(4 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    y.copy_(x)
    sync()
    reps = 10
    t = time.perf_counter()
    for _ in range(reps):
        y.copy_(x)
    sync()
    copy = 2 * x.numel() * reps / (time.perf_counter() - t)  # read + write
    del x, y, a, b
    torch.cuda.empty_cache()
    return {"bf16GemmFlops": gemm, "copyBytesPerSecond": copy}


def make_shape(work, name):
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model

    model_dir = os.path.join(work, name)
    if os.path.exists(os.path.join(model_dir, "config.json")):
        return
    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPES[name])
    t = time.perf_counter()
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(model_dir, safe_serialization=True, max_shard_size="5GB")
    for aname, spec in ADAPTERS.items():
        peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **spec), adapter_name=aname)
        for n_, p in peft_model.named_parameters():
            if "lora_B" in n_:
                torch.nn.init.normal_(p, std=0.02)  # PEFT's fresh B is 0: the adapter would do nothing
        peft_model.save_pretrained(os.path.join(work, f"adapters-{name}"), selected_adapters=[aname])
        model = peft_model.unload()
    del model
    torch.cuda.empty_cache()
    print(f"{name}: checkpoint and adapters in {time.perf_counter() - t:.1f}s", flush=True)


def make(work, shapes):
    os.makedirs(work, exist_ok=True)
    for name in shapes:
        make_shape(work, name)
    with open(os.path.join(work, "ceilings.json"), "w") as f:
        json.dump(ceilings(), f)


def load(work):
    from transformers import AutoModelForCausalLM
    from peft import PeftModel

    t_load = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(os.path.join(work, "llama2-7b-shape"), dtype=torch.bfloat16,
                                                 device_map="cuda", attn_implementation="sdpa")
    names = list(ADAPTERS)
    adir = os.path.join(work, "adapters-llama2-7b-shape")
    model = PeftModel.from_pretrained(model, os.path.join(adir, names[0]), adapter_name=names[0])
    for n in names[1:]:
        model.load_adapter(os.path.join(adir, n), adapter_name=n)
    model.eval()
    sync()
    return model, names, time.perf_counter() - t_load


def rebuilt_caches(model, names, ids, T):
    """The base prefill, one prefill per adapter, and every (adapter, strategy)'s document cache."""
    layers = model.base_model.model.model.layers

    def kv(cache):
        return [(l.keys, l.values) for l in cache.layers]

    with model.disable_adapter():
        base = kv(model(ids[:, :T], use_cache=True).past_key_values)
    rebuilt = {}
    for n in names:
        model.set_adapter(n)
        exact = kv(model(ids[:, :T], use_cache=True).past_key_values)
        rebuilt[(n, "exact")] = exact
        rebuilt[(n, "base")] = base
        seed = []
        for li, ((kb, vb), (ke, ve)) in enumerate(zip(base, exact)):
            vp = layers[li].self_attn.v_proj
            if n in getattr(vp, "lora_B", {}):
                # [1, kvh, T, hd] -> [T, D]: D = kvh·hd lines up with v_proj's output features
                dv = (ve - vb).float().permute(0, 2, 1, 3).reshape(T, -1)
                B = vp.lora_B[n].weight.float()                 # [D, r]
                mini = dv @ torch.linalg.pinv(B).T              # [T, r]
                v = vb.float() + (mini @ B.T).reshape(1, T, vb.shape[1], vb.shape[3]).permute(0, 2, 1, 3)
                seed.append((kb, v.to(vb.dtype)))
            else:
                seed.append((kb, vb))
        rebuilt[(n, "seed-minikv")] = seed
        q8 = []
        for (kb, vb), (ke, ve) in zip(base, exact):
            pair = []
            for b_, e_ in ((kb, ke), (vb, ve)):
                d = (e_ - b_).float()
                scale = d.abs().amax(dim=-1, keepdim=True) / 127
                q = torch.where(scale > 0, torch.round(d / scale), torch.zeros_like(d)).clamp(-127, 127)
                pair.append((b_.float() + q * scale).to(b_.dtype))
            q8.append(tuple(pair))
        rebuilt[(n, "delta-int8")] = q8
    return rebuilt


def run(work, out_path):
    from transformers import DynamicCache

    with open(os.path.join(work, "doc-tokens.json")) as f:
        d = json.load(f)
    doc, prompt = d["document"], d["prompt"]
    model, names, load_s = load(work)
    ids = torch.tensor([doc + prompt], device="cuda")
    T = len(doc)
    L = len(ids[0])

    def to_cache(pairs, batch=None):
        c = DynamicCache()
        for i, (k, v) in enumerate(pairs):
            c.update(k.clone() if batch is None else k, v.clone() if batch is None else v, i)
        return c

    out = {"engine": "transformers + peft", "loadSeconds": load_s,
           "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                        "peft": __import__("peft").__version__}}
    # The batched peer twice (the first warms up kernels and allocator), the straightforward one once.
    for way in ("batched", "batched", "straightforward"):
        torch.cuda.reset_peak_memory_stats()
        sync()
        t0 = time.perf_counter()
        tokens = {}
        with torch.no_grad():
            rebuilt = rebuilt_caches(model, names, ids, T)
            if way == "straightforward":
                for n in names:
                    model.set_adapter(n)
                    for s in STRATEGIES:
                        g = model.generate(input_ids=ids, past_key_values=to_cache(rebuilt[(n, s)]), max_new_tokens=NEW_TOKENS,
                                           min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
                        tokens[f"{n}/{s}"] = g[0, L:].tolist()
            else:
                # One batch of every (adapter, strategy): caches stacked on the batch dimension,
                # each row through its own adapter.
                keys = [(n, s) for n in names for s in STRATEGIES]
                stacked = []
                for li in range(len(rebuilt[keys[0]])):
                    stacked.append((torch.cat([rebuilt[k][li][0] for k in keys]), torch.cat([rebuilt[k][li][1] for k in keys])))
                g = model.generate(input_ids=ids.repeat(len(keys), 1), past_key_values=to_cache(stacked, batch=True),
                                   adapter_names=[n for n, _ in keys], max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                   do_sample=False, pad_token_id=0)
                for i, (n, s) in enumerate(keys):
                    tokens[f"{n}/{s}"] = g[i, L:].tolist()
        sync()
        total = time.perf_counter() - t0
        out[way] = {"endToEndSeconds": total, "peakDeviceBytes": torch.cuda.max_memory_allocated(), "tokens": tokens}
        print(f"hf {way}: {total:.2f}s", flush=True)
        del rebuilt
        torch.cuda.empty_cache()
    with open(out_path, "w") as f:
        json.dump(out, f)
    print(f"hf: load {load_s:.1f}s", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "run"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out")
    ap.add_argument("--shapes", default="llama2-7b-shape,llama3-8b-shape")
    a = ap.parse_args()
    make(a.work, a.shapes.split(",")) if a.cmd == "make" else run(a.work, a.out)
