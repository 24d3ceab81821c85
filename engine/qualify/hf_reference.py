#!/usr/bin/env python3
"""The reference side of `vkae-engine qualify`: Hugging Face transformers on the same checkpoint files.

A long-lived child of the harness: `hf_reference.py PLAN.json`. It loads the checkpoint once, prints one reply
line, then answers one command per stdin line with one reply line on stdout (`@reply {json}`), so the harness
can interleave single repetitions of every path (drift then hits all paths alike) without re-loading the model.

The plan names the mode, the checkpoint folder, the device, dtype, attention, the prompt ids and the output
length. Modes:
  "eager": transformers eager `generate` (greedy, EOS unable to stop it early). Rate of a repetition =
           batch x (N - 1) / (time(N new) - time(1 new)), measured by engine/bench/hf_generate.py's
           `timed_generate` (imported, not re-implemented); `null` where time(N new) <= time(1 new).
  "peer":  the same transformers model and weights with a static KV cache (transformers' `StaticCache`) and its
           decode step captured once per batch with `torch.cuda.graph` (no torch.compile): prefill eager, then
           N - 1 graph replays, each one forward of one token per sequence, greedy argmax, the next token and
           position written in the graph. Rate = batch x (N - 1) / the replays' wall time (as the engine times
           its decode steps).
Commands (one JSON object a line):
  {"op": "rep", "batch": B}        one repetition: {"rate", "tokens_generated", "seq0", "started", "seconds"}
  {"op": "check", "steps": K}      peer: the same-model check at batch 1 (see `same_model_check`)
  {"op": "quality", "ids": [...], "logits": PATH, "f32_logits": PATH|null}
                                   eager: the quality stream teacher-forced in one forward pass, logits written
                                   as raw little-endian f32 rows ([rows, vocab]); with f32_logits, again with the
                                   weights in a float32 copy (the calibration: how far an honest BF16 path sits
                                   from an f32 computation)
  {"op": "quit"}
A failed command answers {"ok": false, "error": ...} and the child keeps serving.
Progress lines on stderr: `@progress {"phase": ..., "done": i, "total": n}`.
"""

import copy
import gc
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import Gemma4ForCausalLM  # noqa: E402

from hf_generate import timed_generate  # noqa: E402

# Progress bars of weight loading would bury the lines that explain a failure.
transformers.utils.logging.disable_progress_bar()

# The peer's same-model rule: its greedy tokens equal transformers eager's for the first K steps, or its
# decode-step logits sit from transformers' own full forward within twice the distance eager's incremental
# decode sits from it (the BF16 band of this model on this machine), floored at 1% relative.
BAND_FACTOR = 2.0
BAND_FLOOR = 0.01


def progress(phase, done, total):
    print("@progress " + json.dumps({"phase": phase, "done": done, "total": total}), file=sys.stderr, flush=True)


def reply(value):
    sys.stdout.write("@reply " + json.dumps(value) + "\n")
    sys.stdout.flush()


def utc(t):
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 10)}"


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


class Eager:
    """transformers eager generate: time(1 new), then time(N new)."""

    def __init__(self, model, plan):
        self.model, self.plan = model, plan
        self.name = "eager generate"

    def rep(self, b):
        device, prompt, new = self.plan["device"], self.plan["prompt_ids"], self.plan["output_tokens"]
        ids = torch.tensor([prompt] * b, dtype=torch.long, device=device)
        t1, _ = timed_generate(self.model, ids, 1, device)
        tn, out = timed_generate(self.model, ids, new, device)
        produced = out[:, len(prompt):]
        rate = b * (new - 1) / (tn - t1) if tn > t1 else None
        return rate, produced


class GraphedDecode:
    """One batch size's static cache and captured decode step."""

    def __init__(self, model, plan, b):
        device, prompt, new = plan["device"], plan["prompt_ids"], plan["output_tokens"]
        if device != "cuda":
            raise RuntimeError("torch.cuda.graph needs a CUDA device")
        cfg = model.config
        self.model, self.b, self.p, self.n = model, b, len(prompt), new
        self.length = self.p + new
        window = getattr(cfg, "sliding_window", None)
        if window is not None and self.length > window:
            # The captured step keeps the sliding layers' "not yet full" branch of StaticSlidingWindowLayer.
            raise RuntimeError(f"prompt + output = {self.length} tokens exceeds the sliding window ({window}): "
                               "the captured decode step would not roll the sliding layers' cache")
        self.cache = transformers.StaticCache(config=cfg, max_cache_len=self.length)
        self.prompt = torch.tensor([prompt] * b, dtype=torch.long, device=device)
        self.prompt_pos = torch.arange(self.p, device=device).unsqueeze(0).expand(b, -1)
        self.ids = torch.zeros((b, 1), dtype=torch.long, device=device)
        self.pos = torch.zeros((b, 1), dtype=torch.long, device=device)
        self.tokens = torch.zeros((b, self.length), dtype=torch.long, device=device)
        self.logits = torch.zeros((b, cfg.vocab_size), dtype=next(model.parameters()).dtype, device=device)
        self.kv = torch.arange(self.length, device=device).view(1, 1, 1, -1)
        self.graph = None
        self.prefill()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.step()
        torch.cuda.current_stream().wait_stream(stream)
        self.prefill()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step()
        sync(device)

    def step(self):
        """One decode step on the static buffers: reads `ids` at `pos`, writes the greedy next token, its logits,
        and advances `pos`; only tensor operations, so it can be captured."""
        # Both mask kinds are the same causal mask while the sequence fits the sliding window (checked above).
        mask = (self.kv <= self.pos.view(-1, 1, 1, 1)).expand(self.b, 1, 1, self.length)
        out = self.model(input_ids=self.ids, position_ids=self.pos, past_key_values=self.cache, use_cache=True,
                         attention_mask={"full_attention": mask, "sliding_attention": mask})
        last = out.logits[:, -1, :]
        self.logits.copy_(last)
        nxt = last.argmax(dim=-1, keepdim=True)
        self.tokens.scatter_(1, self.pos + 1, nxt)
        self.ids.copy_(nxt)
        self.pos.add_(1)

    def prefill(self):
        """Eager prefill of the prompt into the reset cache; the first token from its last logits."""
        self.cache.reset()
        out = self.model(input_ids=self.prompt, position_ids=self.prompt_pos, past_key_values=self.cache,
                         use_cache=True, logits_to_keep=1)
        first = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        self.tokens.zero_()
        self.tokens[:, self.p:self.p + 1].copy_(first)
        self.ids.copy_(first)
        self.pos.fill_(self.p)

    def decode(self, keep_logits=False):
        """Prefill, then N - 1 replays; returns (the replays' seconds, [b, N] tokens, the per-step logits)."""
        self.prefill()
        steps = []
        sync("cuda")
        t0 = time.perf_counter()
        for _ in range(self.n - 1):
            self.graph.replay()
            if keep_logits:
                steps.append(self.logits[0].float().clone())
        sync("cuda")
        return time.perf_counter() - t0, self.tokens[:, self.p:].clone(), steps


class Peer:
    """The static-cache + CUDA-graph peer; graphs are captured at a batch's first repetition (a warm-up)."""

    def __init__(self, model, plan):
        self.model, self.plan = model, plan
        self.name = "static cache + torch.cuda.graph decode step"
        self.graphs = {}

    def graphed(self, b):
        if b not in self.graphs:
            # One batch's graph at a time: the harness measures batch after batch.
            self.graphs.clear()
            gc.collect()
            torch.cuda.empty_cache()
            self.graphs[b] = GraphedDecode(self.model, self.plan, b)
        return self.graphs[b]

    def rep(self, b):
        seconds, produced, _ = self.graphed(b).decode()
        return b * (self.plan["output_tokens"] - 1) / seconds, produced

    def same_model_check(self, steps):
        """At batch 1: the peer's greedy tokens and decode-step logits against transformers eager generate on the
        same model object, and both against transformers' full forward over the prompt and the tokens each chose."""
        plan, model = self.plan, self.model
        prompt, device = plan["prompt_ids"], plan["device"]
        k = max(1, min(steps, plan["output_tokens"] - 1))
        _, peer_tokens, peer_steps = self.graphed(1).decode(keep_logits=True)
        peer_tokens = peer_tokens[0].tolist()
        ids = torch.tensor([prompt], dtype=torch.long, device=device)
        out = model.generate(ids, max_new_tokens=k + 1, min_new_tokens=k + 1, do_sample=False, eos_token_id=None,
                             pad_token_id=0, return_dict_in_generate=True, output_logits=True)
        eager_tokens = out.sequences[0, len(prompt):].tolist()
        # Step i's logits choose token i + 1 (token 0 comes from the prefill).
        eager_steps = [row[0].float() for row in out.logits[1:k + 1]]

        def full_forward(tokens):
            seq = torch.tensor([prompt + tokens[:k]], dtype=torch.long, device=device)
            rows = model(input_ids=seq, use_cache=False).logits[0, len(prompt):len(prompt) + k]
            return rows.float()

        def rel_err(rows, ref):
            got = torch.stack(rows)
            return float((got - ref).norm() / (ref - ref.mean(dim=-1, keepdim=True)).norm())

        peer_err = rel_err(peer_steps[:k], full_forward(peer_tokens))
        band = rel_err(eager_steps, full_forward(eager_tokens))
        same = 0
        for x, y in zip(peer_tokens[:k + 1], eager_tokens[:k + 1]):
            if x != y:
                break
            same += 1
        limit = max(BAND_FACTOR * band, BAND_FLOOR)
        accepted = same >= k + 1 or peer_err <= limit
        how = (f"greedy tokens: first {same} of {k + 1} equal transformers eager's; decode-step logits vs "
               f"transformers' full forward: relative error {peer_err:.2e} (eager's own incremental decode: "
               f"{band:.2e}; limit {limit:.2e})")
        return {"accepted": accepted, "same_tokens": same, "steps": k + 1, "relative_error": peer_err,
                "band": band, "limit": limit, "summary": how}


def write_logits(model, q_ids, path, device):
    ids = torch.tensor([q_ids], dtype=torch.long, device=device)
    t0 = time.perf_counter()
    logits = model(input_ids=ids, use_cache=False).logits[0]
    rows, vocab = logits.shape
    with open(path + ".tmp", "wb") as f:
        for i in range(0, rows, 128):
            f.write(logits[i:i + 128].float().cpu().numpy().astype("<f4").tobytes())
    os.replace(path + ".tmp", path)
    del logits
    return {"rows": int(rows), "vocab": int(vocab), "seconds": time.perf_counter() - t0}


def serve(model, path, plan):
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "quit":
                reply({"ok": True})
                return
            if op == "rep":
                b = int(cmd["batch"])
                # Python's collector off while a repetition is timed (as timeit does): a collection landing in
                # one repetition and not another is host noise, not the path's speed.
                gc.collect()
                gc.disable()
                started = time.time()
                try:
                    rate, produced = path.rep(b)
                finally:
                    gc.enable()
                shown = f"{rate:.2f}" if rate is not None else "none"
                print(f"timing: batch {b} {cmd.get('label', 'repetition')} {utc(started)}-{utc(time.time())} UTC "
                      f"{shown} tok/s", file=sys.stderr, flush=True)
                reply({"ok": True, "rate": rate, "tokens_generated": int(produced.numel()),
                       "seq0": produced[0].tolist(), "started": started, "seconds": time.time() - started})
            elif op == "check" and isinstance(path, Peer):
                reply({"ok": True, **path.same_model_check(int(cmd.get("steps", 16)))})
            elif op == "quality" and isinstance(path, Eager):
                device = plan["device"]
                progress("quality logits", 0, 1)
                q = write_logits(model, cmd["ids"], cmd["logits"], device)
                q["dtype"] = plan["dtype"]
                if cmd.get("f32_logits"):
                    # A float32 copy, so the BF16 model keeps serving repetitions afterwards.
                    f32 = copy.deepcopy(model).float()
                    q["f32"] = write_logits(f32, cmd["ids"], cmd["f32_logits"], device)
                    del f32
                    gc.collect()
                    if device == "cuda":
                        torch.cuda.empty_cache()
                progress("quality logits", 1, 1)
                reply({"ok": True, **q})
            else:
                reply({"ok": False, "error": f"unknown command {op!r} for this child"})
        except Exception as e:  # noqa: BLE001 - the harness gets the reason and decides
            traceback.print_exc(file=sys.stderr)
            reply({"ok": False, "error": f"{type(e).__name__}: {e}"[:900]})


def main():
    plan = json.load(open(sys.argv[1]))
    device, dtype, attn = plan["device"], getattr(torch, plan["dtype"]), plan["attn"]
    t0 = time.perf_counter()
    progress("load", 0, 1)
    model = Gemma4ForCausalLM.from_pretrained(plan["model_dir"], dtype=dtype, attn_implementation=attn).to(device).eval()
    progress("load", 1, 1)
    path = Peer(model, plan) if plan["mode"] == "peer" else Eager(model, plan)
    # A CPU affinity set from outside (engine/qualify/run-h200.sh BASELINE_CPUS) is part of how the child ran.
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = f", pinned to CPUs {cpus}" if cpus and len(cpus) < (os.cpu_count() or len(cpus)) else ""
    reply({"ok": True, "ready": True,
           "impl": f"transformers {transformers.__version__} {path.name} ({attn}, {plan['dtype']}), "
                   f"torch {torch.__version__}{pinned}",
           "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
           "load_s": time.perf_counter() - t0})
    with torch.no_grad():
        serve(model, path, plan)


if __name__ == "__main__":
    main()
