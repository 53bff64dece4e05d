"""bf16 reference for the CUDA build: each base model of tests/fixtures loaded by
transformers in bfloat16 (what `--dtype bf16` means to a transformers user), prefilled
on the case's document tokens, and continued greedily after its prompt.

Writes tests/fixtures/reference/bf16.json (greedy tokens and per-step top1-top2 margins)
and bf16.safetensors (the bf16 logits at the first and last document position). Needs
torch + transformers (the GPU machine); run from the repository root:
    python3 tests/reference/make_bf16_reference.py [--device cuda]
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, DynamicCache

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import NEW_TOKENS  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    manifest = json.load(open(os.path.join(FIXTURES, "reference", "manifest.json")))
    out = {"generator": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                         "device": args.device, "dtype": "bfloat16"}, "cases": []}
    tensors = {}
    for c in manifest["cases"]:
        if c["adapter"] is not None:
            continue
        path = os.path.join(FIXTURES, manifest["models"][c["model"]]["dir"])
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).to(args.device).eval()
        doc, prompt = c["documentTokens"], c["promptTokens"]
        logits = model(input_ids=torch.tensor([doc], device=args.device), use_cache=False).logits[0]
        positions = [0, len(doc) - 1]
        tensors[c["id"]] = logits[positions].to(torch.bfloat16).cpu().contiguous()
        ids = torch.tensor([doc + prompt], device=args.device)
        o = model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True)
        cache, last = o.past_key_values, o.logits[0, -1].float()
        tokens, margins, pos = [], [], ids.shape[1]
        for _ in range(NEW_TOKENS):
            top2 = torch.topk(last, 2).values
            margins.append(float(top2[0] - top2[1]))
            t = int(torch.argmax(last))
            tokens.append(t)
            o = model(input_ids=torch.tensor([[t]], device=args.device), past_key_values=cache,
                      cache_position=torch.tensor([pos], device=args.device), use_cache=True)
            cache, last, pos = o.past_key_values, o.logits[0, -1].float(), pos + 1
        out["cases"].append({"id": c["id"], "model": c["model"], "logitsPositions": positions,
                             "greedy": {"newTokens": tokens, "margins": margins}})
        print(f"{c['id']:40s} greedy={tokens} min margin={min(margins):.4f}", flush=True)
    save_file(tensors, os.path.join(FIXTURES, "reference", "bf16.safetensors"))
    json.dump(out, open(os.path.join(FIXTURES, "reference", "bf16.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
