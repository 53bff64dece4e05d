"""The demo model's training loop in plain torch (no transformers, no peft): token streams,
random training windows, fixed evaluation blocks, the learning-rate schedule, evaluation and
early stopping. train.py drives it for the base model and for each LoRA adapter;
test_loop.py checks it on the CPU with a tiny model (python3 models/demo/train/test_loop.py).

Everything a step needs stays on the device: batches are drawn with a device generator and the
running loss is summed on the device, so the host waits for the GPU only at evaluations.
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -100


def load_stream(path):
    """A uint16 little-endian token file (prepare-data.ts) as a 1-D int64 tensor on the CPU."""
    a = np.fromfile(path, dtype="<u2")
    if a.size < 2:
        raise ValueError(f"{path}: {a.size} tokens; run `npm run demo:data` and carry models/demo/train/data")
    return torch.from_numpy(a.astype(np.int64))


class RandomWindows:
    """Batches of `batch` windows of `block` tokens at uniformly random offsets of a stream
    (documents are concatenated, [BOS] text [EOS] each, so a window may span two), drawn from
    a seeded generator on the stream's device."""

    def __init__(self, stream, block, batch, seed, device):
        if stream.numel() < block:
            raise ValueError(f"a stream of {stream.numel()} tokens is shorter than one block of {block}")
        self.data = stream.to(device)
        self.block = block
        self.batch = batch
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.offsets = torch.arange(block, device=device)
        self.high = self.data.numel() - block + 1

    def next(self):
        starts = torch.randint(0, self.high, (self.batch,), generator=self.gen, device=self.data.device)
        return self.data[starts[:, None] + self.offsets]


def fixed_blocks(stream, block):
    """A stream cut into consecutive blocks for evaluation: [n, block] full blocks plus the
    remainder as one shorter block (or None), so that every token but each block's first is
    scored exactly once."""
    n = stream.numel() // block
    full = stream[: n * block].view(n, block) if n else None
    rest = stream[n * block:]
    return full, (rest.view(1, -1) if rest.numel() >= 2 else None)


def lm_targets(x):
    """Next-token targets for the logits of x: x shifted left, the last position ignored."""
    t = torch.empty_like(x)
    t[:, :-1] = x[:, 1:]
    t[:, -1] = IGNORE
    return t


def lm_loss(logits, x, reduction="mean"):
    """Causal LM cross-entropy of logits [B, T, V] computed from input ids x [B, T], in fp32."""
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), lm_targets(x).reshape(-1),
                           ignore_index=IGNORE, reduction=reduction)


def lr_factor(step, warmup, total, floor):
    """Linear warmup over `warmup` updates, then cosine from 1 to `floor` at update `total`."""
    if step < warmup:
        return (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))


class Evaluator:
    """Mean next-token loss over a fixed set of blocks (token-weighted over all of them)."""

    def __init__(self, stream, block, batch, device):
        full, rest = fixed_blocks(stream, block)
        self.parts = []
        if full is not None:
            self.parts += [full[i:i + batch].to(device) for i in range(0, full.size(0), batch)]
        if rest is not None:
            self.parts.append(rest.to(device))
        self.tokens = sum(p.size(0) * (p.size(1) - 1) for p in self.parts)
        if self.tokens == 0:
            raise ValueError("nothing to evaluate")

    @torch.no_grad()
    def __call__(self, model, logits_fn, amp_dtype=None):
        was_training = model.training
        model.eval()
        total = None
        for x in self.parts:
            with autocast(x.device, amp_dtype):
                logits = logits_fn(model, x)
            s = lm_loss(logits, x, reduction="sum").double()
            total = s if total is None else total + s
        model.train(was_training)
        return (total / self.tokens).item()


def autocast(device, dtype):
    """bf16 autocast on the device when dtype is given, else a no-op context."""
    return torch.autocast(device_type=device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


@dataclass
class TrainSettings:
    lr: float
    max_steps: int
    warmup: int
    eval_every: int
    patience: int          # evaluations without improvement before stopping
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.95)
    lr_floor: float = 0.1  # the cosine ends at lr * lr_floor
    grad_clip: float = 1.0
    min_delta: float = 1e-4  # an evaluation must beat the best by this much to count
    time_cap_s: float = float("inf")


@dataclass
class TrainResult:
    initial_val: float
    best_val: float
    best_step: int
    steps: int
    stop_reason: str
    seconds: float
    tokens_per_second: float
    history: list = field(default_factory=list)  # [step, mean train loss since last eval, val loss, lr]


def param_groups(named_params, weight_decay):
    """AdamW groups: decay on matrices (2-D and up), none on norms and biases."""
    decay = [p for n, p in named_params if p.ndim >= 2]
    other = [p for n, p in named_params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if other:
        groups.append({"params": other, "weight_decay": 0.0})
    return groups


def train(model, named_params, logits_fn, windows, evaluator, s, *, amp_dtype, log, label):
    """Trains `named_params` (the trainable ones) with AdamW on `windows`, evaluating every
    `s.eval_every` updates and stopping after `s.patience` evaluations without improvement,
    at `s.max_steps` or at the time cap; the parameters end at their best evaluation (which
    may be the starting point: best_step 0)."""
    device = windows.data.device
    params = [p for _, p in named_params]
    extra = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(param_groups(named_params, s.weight_decay), lr=s.lr, betas=s.betas, eps=1e-8, **extra)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_factor(k, s.warmup, s.max_steps, s.lr_floor))

    def snapshot():
        return [p.detach().clone() for p in params]

    t0 = time.monotonic()
    initial = evaluator(model, logits_fn, amp_dtype)
    best, best_step, best_state, bad = initial, 0, snapshot(), 0
    history = [[0, None, initial, 0.0]]
    log(f"{label}: step 0 val {initial:.4f}")
    model.train()
    running = torch.zeros((), device=device)
    since = 0
    stop_reason = "max steps"
    step = 0
    for step in range(1, s.max_steps + 1):
        x = windows.next()
        with autocast(device, amp_dtype):
            logits = logits_fn(model, x)
        loss = lm_loss(logits, x)
        loss.backward()
        if s.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        running += loss.detach()
        since += 1
        over_time = time.monotonic() - t0 > s.time_cap_s
        if step % s.eval_every == 0 or step == s.max_steps or over_time:
            train_loss = (running / since).item()
            running.zero_()
            since = 0
            val = evaluator(model, logits_fn, amp_dtype)
            lr_now = opt.param_groups[0]["lr"]
            history.append([step, train_loss, val, lr_now])
            if not (math.isfinite(train_loss) and math.isfinite(val)):
                raise FloatingPointError(f"{label}: the loss is {train_loss} (train) / {val} (val) at step {step}; the learning rate {s.lr:g} is too high")
            improved = val < best - s.min_delta
            if improved:
                best, best_step, best_state, bad = val, step, snapshot(), 0
            else:
                bad += 1
            log(f"{label}: step {step} train {train_loss:.4f} val {val:.4f} lr {lr_now:.2e}"
                f"{' *' if improved else ''} ({time.monotonic() - t0:.1f} s)")
            if over_time:
                stop_reason = f"time cap ({s.time_cap_s:.0f} s)"
                break
            if bad >= s.patience:
                stop_reason = f"early stop ({s.patience} evaluations without improvement)"
                break
    with torch.no_grad():
        for p, b in zip(params, best_state):
            p.copy_(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.monotonic() - t0
    tokens = step * windows.batch * windows.block
    log(f"{label}: {stop_reason} after {step} steps, best val {best:.4f} at step {best_step} "
        f"(from {initial:.4f}), {seconds:.1f} s, {tokens / seconds:,.0f} tokens/s")
    return TrainResult(initial, best, best_step, step, stop_reason, seconds, tokens / seconds, history)
