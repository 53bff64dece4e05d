"""Stand-in for transformers in train.py --dry-run (see ../README.md)."""
import json
import os
from types import SimpleNamespace

import torch

__version__ = "dry-run stand-in"
DIM = 16


class LlamaConfig:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class TinyLM(torch.nn.Module):
    """Embedding -> one causal mixing layer -> tied output; forward(input_ids=...).logits."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.embed = torch.nn.Embedding(cfg.vocab_size, DIM)
        self.mix = torch.nn.Linear(2 * DIM, DIM, bias=False)
        self.norm = torch.nn.LayerNorm(DIM)
        self.lm_head = torch.nn.Linear(DIM, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight  # tied
        self.hidden_hook = None  # the LoRA stand-in adds its delta here

    def tie_weights(self):
        self.lm_head.weight = self.embed.weight

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return self.lm_head

    def hidden(self, input_ids):
        h = self.embed(input_ids)
        prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
        h = h + self.mix(torch.cat([h, prev], dim=-1))
        if self.hidden_hook is not None:
            h = h + self.hidden_hook(h)
        return self.norm(h)

    def forward(self, input_ids, use_cache=False, attention_mask=None):
        assert use_cache is False or attention_mask is not None
        return SimpleNamespace(logits=self.lm_head(self.hidden(input_ids)))

    def save_pretrained(self, path):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump({**self.config.__dict__, "architectures": ["LlamaForCausalLM"],
                       "dtype": str(self.embed.weight.dtype).replace("torch.", "")}, f)
        state = {k: v for k, v in self.state_dict().items() if k != "lm_head.weight"}
        torch.save(state, os.path.join(path, "model.safetensors"))  # not safetensors: a stand-in
        with open(os.path.join(path, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 1, "eos_token_id": 2}, f)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, max_new_tokens, do_sample, pad_token_id,
                 return_dict_in_generate, output_scores):
        assert not do_sample and return_dict_in_generate and output_scores
        ids, scores = input_ids, []
        for _ in range(max_new_tokens):
            logits = self(input_ids=ids, use_cache=True, attention_mask=torch.ones_like(ids)).logits[:, -1]
            scores.append(logits)
            nxt = logits.argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
            if int(nxt) == self.config.eos_token_id:
                break
        return SimpleNamespace(sequences=ids, scores=tuple(scores))


class AutoModelForCausalLM:
    @staticmethod
    def from_config(cfg):
        return TinyLM(cfg)

    @staticmethod
    def from_pretrained(path, dtype):
        with open(os.path.join(path, "config.json")) as f:
            cfg = LlamaConfig(**{k: v for k, v in json.load(f).items() if k not in ("architectures", "dtype")})
        model = TinyLM(cfg)
        model.load_state_dict(torch.load(os.path.join(path, "model.safetensors")), strict=False)
        model.lm_head.weight = model.embed.weight
        return model.to(dtype)


class AutoTokenizer:
    @staticmethod
    def from_pretrained(path):
        raise NotImplementedError("the dry-run stand-in has no tokenizer (train.py reports and goes on)")
