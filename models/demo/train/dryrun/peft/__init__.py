"""Stand-in for peft in train.py --dry-run (see ../README.md)."""
import json
import os

import torch

__version__ = "dry-run stand-in"


class LoraConfig:
    def __init__(self, task_type, lora_dropout, r, lora_alpha, target_modules, use_rslora=False,
                 rank_pattern=None, alpha_pattern=None):
        assert task_type == "CAUSAL_LM"
        self.__dict__.update(dict(task_type=task_type, lora_dropout=lora_dropout, r=r, lora_alpha=lora_alpha,
                                  target_modules=target_modules, use_rslora=use_rslora,
                                  rank_pattern=rank_pattern or {}, alpha_pattern=alpha_pattern or {}))


class LowRank(torch.nn.Module):
    def __init__(self, dim, r, scale):
        super().__init__()
        self.lora_A = torch.nn.Linear(dim, r, bias=False)
        self.lora_B = torch.nn.Linear(r, dim, bias=False)
        torch.nn.init.zeros_(self.lora_B.weight)
        self.scale = scale

    def forward(self, h):
        return self.scale * self.lora_B(self.lora_A(h.to(self.lora_A.weight.dtype))).to(h.dtype)


class PeftModel(torch.nn.Module):
    def __init__(self, base, cfg):
        super().__init__()
        for p in base.parameters():
            p.requires_grad_(False)
        self.base_model = base
        self.peft_config = cfg
        dim = base.embed.weight.shape[1]
        scale = cfg.lora_alpha / (cfg.r ** 0.5 if cfg.use_rslora else cfg.r)
        self.lora = LowRank(dim, cfg.r, scale)
        base.hidden_hook = self.lora

    def forward(self, **kw):
        return self.base_model(**kw)

    def generate(self, **kw):
        return self.base_model.generate(**kw)

    def save_pretrained(self, path):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "adapter_config.json"), "w") as f:
            json.dump({**self.peft_config.__dict__, "base_model_name_or_path": "/tmp/somewhere", "peft_type": "LORA"}, f)
        torch.save(self.lora.state_dict(), os.path.join(path, "adapter_model.safetensors"))
        with open(os.path.join(path, "README.md"), "w") as f:
            f.write("generic card\n")

    @staticmethod
    def from_pretrained(base, path):
        with open(os.path.join(path, "adapter_config.json")) as f:
            c = json.load(f)
        cfg = LoraConfig(**{k: c[k] for k in ("task_type", "lora_dropout", "r", "lora_alpha", "target_modules",
                                                "use_rslora", "rank_pattern", "alpha_pattern")})
        m = PeftModel(base, cfg)
        state = torch.load(os.path.join(path, "adapter_model.safetensors"))
        m.lora.load_state_dict({k: v.to(m.lora.lora_A.weight.dtype) for k, v in state.items()})
        return m


def get_peft_model(model, cfg):
    return PeftModel(model, cfg)
