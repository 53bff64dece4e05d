"""The benchmark's reference side and its fixtures, on the GPU machine.

1. `make`: a Llama-2-7B-shaped checkpoint with random bf16 weights (save_pretrained, as HF
   saves it), three PEFT adapters (q/v r=8, q/v r=16, q/k/v/o r=64, with B non-zero), a
   1024-token random document; and the device's ceilings measured in this run: bf16 GEMM
   rate and device-to-device copy bandwidth.
2. `run`: HF transformers + PEFT doing the benchmark's work the straightforward way, timed
   end to end (load excluded): base prefill, one prefill per adapter, per strategy the
   rebuilt cache (exact, base, seed-minikv with pinv mini-V per layer, delta-int8), then one
   `generate` of 32 greedy tokens per (adapter, strategy). Writes hf.json.
"""
import argparse
import json
import os
import sys
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
DOC_TOKENS = 1024
NEW_TOKENS = 32


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


def make(work):
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model

    os.makedirs(work, exist_ok=True)
    model_dir = os.path.join(work, "llama2-7b-shape")
    torch.manual_seed(0)
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        cfg = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                          intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096,
                          rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
        t = time.perf_counter()
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        model.save_pretrained(model_dir, safe_serialization=True, max_shard_size="5GB")
        print(f"checkpoint: {time.perf_counter() - t:.1f}s", flush=True)
        for name, spec in ADAPTERS.items():
            peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **spec),
                                        adapter_name=name)
            for n_, p in peft_model.named_parameters():
                if "lora_B" in n_:
                    torch.nn.init.normal_(p, std=0.02)  # PEFT's fresh B is 0: the adapter would do nothing
            peft_model.save_pretrained(os.path.join(work, "adapters"), selected_adapters=[name])
            model = peft_model.unload()
        del model
        torch.cuda.empty_cache()
    g = torch.Generator().manual_seed(1)
    doc = torch.randint(3, 32000, (DOC_TOKENS,), generator=g).tolist()
    with open(os.path.join(work, "doc.json"), "w") as f:
        json.dump(doc, f)
    with open(os.path.join(work, "ceilings.json"), "w") as f:
        json.dump(ceilings(), f)


def run(work, out_path):
    from transformers import AutoModelForCausalLM, DynamicCache
    from peft import PeftModel

    with open(os.path.join(work, "doc.json")) as f:
        doc = json.load(f)
    t_load = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(os.path.join(work, "llama2-7b-shape"), dtype=torch.bfloat16,
                                                 device_map="cuda", attn_implementation="sdpa")
    names = list(ADAPTERS)
    adir = os.path.join(work, "adapters")
    model = PeftModel.from_pretrained(model, os.path.join(adir, names[0]), adapter_name=names[0])
    for n in names[1:]:
        model.load_adapter(os.path.join(adir, n), adapter_name=n)
    model.eval()
    sync()
    load_s = time.perf_counter() - t_load
    layers = model.base_model.model.model.layers
    ids = torch.tensor([doc], device="cuda")
    T = DOC_TOKENS - 1  # the caches hold the first T tokens; generate feeds the last one

    def kv(cache):
        return [(l.keys, l.values) for l in cache.layers]

    def to_cache(pairs):
        c = DynamicCache()
        for i, (k, v) in enumerate(pairs):
            c.update(k.clone(), v.clone(), i)
        return c

    torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        with model.disable_adapter():
            base = kv(model(ids[:, :T], use_cache=True).past_key_values)
        sync()
        t_prefill = time.perf_counter() - t0
        rebuilt, tokens = {}, {}
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
        for n in names:
            model.set_adapter(n)
            for s in STRATEGIES:
                out = model.generate(input_ids=ids, past_key_values=to_cache(rebuilt[(n, s)]), max_new_tokens=NEW_TOKENS,
                                     min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
                tokens[f"{n}/{s}"] = out[0, DOC_TOKENS:].tolist()
    sync()
    total = time.perf_counter() - t0
    res = {
        "engine": "transformers + peft",
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "peft": __import__("peft").__version__},
        "loadSeconds": load_s,
        "endToEndSeconds": total,
        "basePrefillSeconds": t_prefill,
        "peakDeviceBytes": torch.cuda.max_memory_allocated(),
        "tokens": tokens,
    }
    with open(out_path, "w") as f:
        json.dump(res, f)
    print(f"hf: end-to-end {total:.2f}s (base prefill {t_prefill*1e3:.1f} ms), load {load_s:.1f}s", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "run"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out")
    a = ap.parse_args()
    make(a.work) if a.cmd == "make" else run(a.work, a.out)
