"""CPU checks of loop.py (the part of the demo's training that needs no transformers or peft).

    python3 models/demo/train/test_loop.py      (torch and numpy; Debian: apt-get install python3-torch)
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loop  # noqa: E402


class TinyLM(torch.nn.Module):
    """A causal LM small enough for the CPU: embedding, a causal conv over 2 tokens, output."""

    def __init__(self, vocab=16, dim=32):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.prev = torch.nn.Linear(dim, dim, bias=False)
        self.norm = torch.nn.LayerNorm(dim)
        self.out = torch.nn.Linear(dim, vocab)

    def forward(self, x):
        h = self.emb(x)
        shifted = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
        return self.out(self.norm(h + self.prev(shifted)))


def logits_fn(model, x):
    return model(x)


def pattern_stream(n, vocab=16, seed=0):
    """A stream where each token is a function of the previous one (learnable), with noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, dtype=torch.int64)
    x[0] = 1
    noise = torch.rand(n, generator=g) < 0.1
    rnd = torch.randint(0, vocab, (n,), generator=g)
    for i in range(1, n):
        x[i] = rnd[i] if noise[i] else (3 * x[i - 1] + 1) % vocab
    return x


CPU = torch.device("cpu")
SILENT = lambda *_: None  # noqa: E731


class StreamsAndBlocks(unittest.TestCase):
    def test_load_stream_reads_little_endian_uint16(self):
        with tempfile.TemporaryDirectory() as d:
            f = os.path.join(d, "s.bin")
            np.array([1, 513, 65535, 2], dtype="<u2").tofile(f)
            self.assertEqual(loop.load_stream(f).tolist(), [1, 513, 65535, 2])
            np.array([7], dtype="<u2").tofile(f)
            with self.assertRaisesRegex(ValueError, "npm run demo:data"):
                loop.load_stream(f)

    def test_fixed_blocks_score_every_token_once(self):
        s = torch.arange(23)
        full, rest = loop.fixed_blocks(s, 5)
        self.assertEqual(full.shape, (4, 5))
        self.assertEqual(rest.tolist(), [[20, 21, 22]])
        self.assertEqual(torch.cat([full.flatten(), rest.flatten()]).tolist(), list(range(23)))
        full, rest = loop.fixed_blocks(torch.arange(11), 5)
        self.assertIsNone(rest, "a 1-token remainder has nothing to predict")
        full, rest = loop.fixed_blocks(torch.arange(3), 5)
        self.assertIsNone(full)
        self.assertEqual(rest.shape, (1, 3))

    def test_random_windows_are_slices_and_seeded(self):
        s = torch.arange(1000)
        a = loop.RandomWindows(s, 16, 8, seed=3, device=CPU)
        b = loop.RandomWindows(s, 16, 8, seed=3, device=CPU)
        c = loop.RandomWindows(s, 16, 8, seed=4, device=CPU)
        xa, xb, xc = a.next(), b.next(), c.next()
        self.assertEqual(xa.shape, (8, 16))
        self.assertTrue(torch.equal(xa, xb))
        self.assertFalse(torch.equal(xa, xc))
        self.assertTrue(torch.equal(xa[:, 1:] - xa[:, :-1], torch.ones(8, 15, dtype=torch.int64)))
        self.assertTrue(int(xa.max()) < 1000)
        # The last window of the stream can be drawn: high bound is inclusive of it.
        self.assertEqual(loop.RandomWindows(torch.arange(16), 16, 4, 0, CPU).next().tolist(), [list(range(16))] * 4)
        with self.assertRaises(ValueError):
            loop.RandomWindows(torch.arange(10), 16, 2, 0, CPU)


class LossAndSchedule(unittest.TestCase):
    def test_lm_loss_is_next_token_cross_entropy(self):
        torch.manual_seed(0)
        logits = torch.randn(2, 4, 7)
        x = torch.randint(0, 7, (2, 4))
        manual = -sum(F.log_softmax(logits[b, t], -1)[x[b, t + 1]] for b in range(2) for t in range(3)) / 6
        self.assertAlmostEqual(loop.lm_loss(logits, x).item(), manual.item(), places=5)
        self.assertAlmostEqual(loop.lm_loss(logits, x, "sum").item(), 6 * manual.item(), places=4)

    def test_lr_factor_warmup_then_cosine_to_floor(self):
        f = lambda k: loop.lr_factor(k, 10, 110, 0.1)  # noqa: E731
        self.assertAlmostEqual(f(0), 0.1)
        self.assertAlmostEqual(f(9), 1.0)
        self.assertAlmostEqual(f(10), 1.0)
        self.assertAlmostEqual(f(60), 0.55)
        self.assertAlmostEqual(f(110), 0.1)
        self.assertAlmostEqual(f(500), 0.1)
        self.assertTrue(all(f(k) >= f(k + 1) for k in range(10, 120)))

    def test_evaluator_is_token_weighted_over_all_blocks(self):
        torch.manual_seed(1)
        model = TinyLM()
        s = pattern_stream(53)
        ev = loop.Evaluator(s, 10, batch=2, device=CPU)
        self.assertEqual(ev.tokens, 5 * 9 + 2)
        with torch.no_grad():
            full, rest = loop.fixed_blocks(s, 10)
            total = loop.lm_loss(model(full), full, "sum") + loop.lm_loss(model(rest), rest, "sum")
        self.assertAlmostEqual(ev(model, logits_fn), (total / 47).item(), places=5)

    def test_param_groups_decay_matrices_only(self):
        m = TinyLM()
        groups = loop.param_groups(list(m.named_parameters()), 0.1)
        self.assertEqual({id(p) for p in groups[0]["params"]}, {id(m.emb.weight), id(m.prev.weight), id(m.out.weight)})
        self.assertEqual(groups[1]["weight_decay"], 0.0)


class Training(unittest.TestCase):
    def settings(self, **kw):
        base = dict(lr=1e-2, max_steps=150, warmup=5, eval_every=10, patience=3, weight_decay=0.0)
        base.update(kw)
        return loop.TrainSettings(**base)

    def test_learns_a_pattern_and_keeps_the_best_evaluation(self):
        torch.manual_seed(0)
        model = TinyLM()
        windows = loop.RandomWindows(pattern_stream(4000, seed=1), 32, 16, seed=0, device=CPU)
        ev = loop.Evaluator(pattern_stream(1000, seed=2), 32, 8, CPU)
        r = loop.train(model, list(model.named_parameters()), logits_fn, windows, ev, self.settings(),
                       amp_dtype=None, log=SILENT, label="t")
        self.assertLess(r.best_val, r.initial_val - 1.0, "the pattern is learnable")
        self.assertGreater(r.best_step, 0)
        self.assertAlmostEqual(ev(model, logits_fn), r.best_val, places=5, msg="parameters end at the best evaluation")
        self.assertEqual(r.history[0][0], 0)
        self.assertTrue(all(h[0] % 10 == 0 or h[0] == r.steps for h in r.history))

    def test_stops_early_and_restores_the_start_when_nothing_helps(self):
        # Validation on a stream unrelated to the training stream: training on pure noise
        # with a huge LR only makes validation worse, so the start is the best.
        torch.manual_seed(0)
        model = TinyLM()
        start = [p.detach().clone() for p in model.parameters()]
        noise = torch.randint(0, 16, (4000,), generator=torch.Generator().manual_seed(5))
        windows = loop.RandomWindows(noise, 32, 16, seed=0, device=CPU)
        ev = loop.Evaluator(pattern_stream(1000, seed=2), 32, 8, CPU)
        r = loop.train(model, list(model.named_parameters()), logits_fn, windows, ev,
                       self.settings(lr=0.5, max_steps=1000, patience=2), amp_dtype=None, log=SILENT, label="t")
        self.assertEqual(r.best_step, 0)
        self.assertEqual(r.steps, 20, "two evaluations without improvement, every 10 steps")
        self.assertIn("early stop", r.stop_reason)
        self.assertTrue(all(torch.equal(a, b) for a, b in zip(start, model.parameters())))

    def test_time_cap_stops_with_a_final_evaluation(self):
        torch.manual_seed(0)
        model = TinyLM()
        windows = loop.RandomWindows(pattern_stream(4000, seed=1), 32, 16, seed=0, device=CPU)
        ev = loop.Evaluator(pattern_stream(500, seed=2), 32, 8, CPU)
        r = loop.train(model, list(model.named_parameters()), logits_fn, windows, ev,
                       self.settings(max_steps=10_000, time_cap_s=0.0), amp_dtype=None, log=SILENT, label="t")
        self.assertEqual(r.steps, 1)
        self.assertIn("time cap", r.stop_reason)
        self.assertEqual(len(r.history), 2)

    def test_a_diverging_loss_fails_with_the_learning_rate_named(self):
        model = TinyLM()
        with torch.no_grad():
            model.out.bias.fill_(float("nan"))
        windows = loop.RandomWindows(pattern_stream(500), 32, 4, 0, CPU)
        ev = loop.Evaluator(pattern_stream(200), 32, 4, CPU)
        with self.assertRaisesRegex(FloatingPointError, "learning rate"):
            loop.train(model, list(model.named_parameters()), logits_fn, windows, ev, self.settings(max_steps=10),
                       amp_dtype=None, log=SILENT, label="t")

    def test_only_the_given_parameters_change(self):
        torch.manual_seed(0)
        model = TinyLM()
        for p in model.parameters():
            p.requires_grad_(False)
        model.prev.weight.requires_grad_(True)
        frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n != "prev.weight"}
        windows = loop.RandomWindows(pattern_stream(2000, seed=1), 32, 8, 0, CPU)
        ev = loop.Evaluator(pattern_stream(500, seed=2), 32, 8, CPU)
        loop.train(model, [("prev.weight", model.prev.weight)], logits_fn, windows, ev, self.settings(max_steps=20),
                   amp_dtype=None, log=SILENT, label="t")
        self.assertTrue(all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen))

    def test_bf16_autocast_path_runs_on_cpu(self):
        torch.manual_seed(0)
        model = TinyLM()
        windows = loop.RandomWindows(pattern_stream(2000, seed=1), 32, 8, 0, CPU)
        ev = loop.Evaluator(pattern_stream(500, seed=2), 32, 8, CPU)
        r = loop.train(model, list(model.named_parameters()), logits_fn, windows, ev, self.settings(max_steps=30),
                       amp_dtype=torch.bfloat16, log=SILENT, label="t")
        self.assertTrue(math.isfinite(r.best_val))
        self.assertLess(r.best_val, r.initial_val)


HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


@unittest.skipUnless(os.path.exists(os.path.join(DATA, "manifest.json")), "run `npm run demo:data` first")
class TrainScriptDryRun(unittest.TestCase):
    """train.py's whole flow on the CPU with the stand-ins of dryrun/ for transformers and peft."""

    def test_writes_every_output_and_retries_a_rejected_adapter(self):
        with tempfile.TemporaryDirectory() as out:
            env = {**os.environ, "PYTHONPATH": os.path.join(HERE, "dryrun")}
            root = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
            p = subprocess.run([sys.executable, os.path.join(HERE, "train.py"), "--dry-run", "--out", out],
                               cwd=root, env=env, capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
            demo = os.path.join(out, "models", "demo")
            for f in ["base/config.json", "base/model.safetensors", "base/tokenizer.json", "base/tokenizer_config.json",
                      "MODEL_CARD.md", "train/losses.json", "train/hf-reference.json"]:
                self.assertTrue(os.path.exists(os.path.join(demo, f)), f)
            with open(os.path.join(demo, "train", "losses.json")) as f:
                losses = json.load(f, parse_constant=lambda c: self.fail(f"non-JSON constant {c}"))
            self.assertEqual(losses["problems"], [])
            for name, r in losses["adapters"].items():
                self.assertTrue(r["ok"], name)
                d = os.path.join(demo, "adapters", name)
                self.assertEqual(sorted(os.listdir(d)), ["adapter_config.json", "adapter_model.safetensors"])
                with open(os.path.join(d, "adapter_config.json")) as f:
                    self.assertEqual(json.load(f)["base_model_name_or_path"], "models/demo/base")
                self.assertLess(r["test"][r["genre"]], losses["base"]["test"][r["genre"]])
            retried = losses["adapters"]["sotu-modern-qv-r8"]["attempts"]
            self.assertEqual([a["lr"] for a in retried][:2], [300.0, 2e-3])
            self.assertIsNotNone(retried[0]["problem"])
            with open(os.path.join(demo, "MODEL_CARD.md"), encoding="utf-8") as f:
                card = f.read()
            self.assertNotIn("{{", card)
            self.assertIn(f"{losses['base']['test']['moby-dick']:.4f}", card)
            with open(os.path.join(demo, "train", "hf-reference.json")) as f:
                ref = json.load(f)
            self.assertEqual(sorted(ref["rows"]), sorted(f"{n}/{d}" for n in ["base", *losses["adapters"]] for d in ("fp32", "bf16")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
