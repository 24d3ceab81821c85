#!/usr/bin/env python3
"""The reference side of `vkae-engine qualify`: Hugging Face transformers on the same checkpoint files.

Run by the harness as a child process: `hf_reference.py PLAN.json RESULT.json`. The plan (written by the
harness) names the checkpoint folder, the device, the prompt ids, the output length, the batches, repetitions
and warm-ups, and for mode "baseline" the quality stream and where its logits go.

mode "baseline": transformers eager `generate` (greedy, EOS unable to stop it early, so every sequence has
                 exactly the requested length), timed per batch with warm-up excluded (the plan's warm-ups, then more until two in a row agree
                 within 3% and 20 s of warm-up have run, at most 6 more); then the quality stream
                 teacher-forced in one forward pass, its logits written as raw little-endian f32 rows
                 ([rows, vocab]); with "f32_logits" set, the same model converted to f32 does it again (how far
                 an honest BF16 path sits from an f32 computation: the calibration for the thresholds).
mode "peer":     the same generate with a static KV cache, which transformers compiles with torch.compile.
                 The result file is rewritten after each batch, so a crash or the harness's time limit leaves
                 what was measured.

Decode rate = batch x (N - 1) / (time(N new) - time(1 new)), measured by engine/bench/hf_generate.py's
`timed_generate` (imported, not re-implemented). Tokens generated are counted from the returned tensors.
Progress lines on stderr: `@progress {"phase": ..., "done": i, "total": n}`.
"""

import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import Gemma4ForCausalLM  # noqa: E402

from hf_generate import timed_generate  # noqa: E402

# Progress bars of weight loading would bury the lines that explain a failure.
transformers.utils.logging.disable_progress_bar()

# Warm-ups past the plan's count: until two in a row agree within WARMUP_STEADY and at least WARMUP_MIN_S
# seconds of warm-up have run, at most WARMUP_EXTRA more. On the H200 two warm-ups agreeing was not enough: the
# first batch a process measured kept speeding up through its timed repetitions (16.4, 17.2, 18.4 tok/s
# after 3 warm-ups that agreed within 3%), so the warm-up also gets a minimum length.
WARMUP_STEADY = 0.03
WARMUP_MIN_S = 20.0
WARMUP_EXTRA = 6


def progress(phase, done, total):
    print("@progress " + json.dumps({"phase": phase, "done": done, "total": total}), file=sys.stderr, flush=True)


def log_timing(kind, b, i, started, rate):
    """One line per timed pair on stderr (the harness keeps it in the child's log): its wall-clock window, to
    read against what the machine did meanwhile (run-h200.sh's monitor.txt samples a CPU probe every 5 s)."""
    def utc(t):
        return time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 10)}"

    shown = f"{rate:.2f}" if rate is not None else "none"
    print(f"timing: batch {b} {kind} {i} {utc(started)}-{utc(time.time())} UTC {shown} tok/s", file=sys.stderr, flush=True)


def timed_pair(gen, model, ids, new, device, b):
    """One repetition: time(1 new), then time(N new). Returns (wall-clock start, decode rate or None where host
    noise swamped it, i.e. time(N new) <= time(1 new), the N-token output)."""
    started = time.time()
    t1, _ = gen(model, ids, 1, device)
    tn, out = gen(model, ids, new, device)
    return started, (b * (new - 1) / (tn - t1) if tn > t1 else None), out


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def timed_static_generate(model, ids, new, device):
    """As hf_generate.timed_generate, with transformers' static cache (and so its torch.compile of decode)."""
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(
        ids,
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
        cache_implementation="static",
    )
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def measure_batches(model, plan, result, result_path, peer):
    device, prompt, new = plan["device"], plan["prompt_ids"], plan["output_tokens"]
    gen = timed_static_generate if peer else timed_generate
    label = "peer" if peer else "baseline"
    for b in plan["batches"]:
        ids = torch.tensor([prompt] * b, dtype=torch.long, device=device)
        steps = plan["warmup"] + plan["reps"]
        progress(f"{label} batch {b}", 0, steps)
        warm_rates = []
        while plan["warmup"] > 0:
            # A warm-up is a whole timed repetition (1 new, then N new), discarded: a shorter one left first-use
            # costs in the first timed repetition (the first H200 run: rep 1 at 0.6-0.85x the others). For the
            # peer it is also where the decode step gets compiled. Past the requested count, warm up until two
            # in a row agree within WARMUP_STEADY and WARMUP_MIN_S have passed (at most WARMUP_EXTRA more): on
            # the H200 the first batch a process measures kept speeding up for ~30 s (batch 1: 15.1, 17.6,
            # 19.3 tok/s after 2 warm-ups).
            if not warm_rates:
                warm_start = time.perf_counter()
            started, rate, _ = timed_pair(gen, model, ids, new, device, b)
            warm_rates.append(rate)
            log_timing("warm-up", b, len(warm_rates), started, rate)
            done = len(warm_rates)
            progress(f"{label} batch {b}", min(done, plan["warmup"]), steps)
            if done < plan["warmup"]:
                continue
            last, prev = warm_rates[-1], warm_rates[-2] if done >= 2 else None
            steady = last is not None and prev is not None and abs(last - prev) <= WARMUP_STEADY * last
            long_enough = time.perf_counter() - warm_start >= WARMUP_MIN_S
            if (steady and long_enough) or done >= plan["warmup"] + WARMUP_EXTRA:
                break
        rates, generated, seq0, discarded = [], 0, None, 0
        for r in range(plan["reps"]):
            while True:
                # Python's collector off while a pair is timed (as timeit does): a collection landing in one
                # repetition and not another is host noise, not the path's speed.
                gc.collect()
                gc.disable()
                try:
                    started, rate, out = timed_pair(gen, model, ids, new, device, b)
                finally:
                    gc.enable()
                log_timing("repetition", b, r + 1, started, rate)
                if rate is not None:
                    break
                # time(N new) <= time(1 new): host noise swamped the measurement (seen only on loaded CPUs).
                # Repeat it, say so in the result, and give up after 3 such repeats.
                discarded += 1
                if discarded > 3:
                    raise RuntimeError(f"batch {b}: time({new} new) <= time(1 new) four times; no valid decode rate")
            produced = out[:, len(prompt):]
            generated += produced.numel()
            rates.append(rate)
            seq0 = produced[0].tolist()
            progress(f"{label} batch {b}", plan["warmup"] + r + 1, steps)
        result["batches"].append({"batch": b, "tokens_per_s": rates, "tokens_generated": generated, "seq0_tokens": seq0,
                                  "discarded_repetitions": discarded, "warmup_repetitions": len(warm_rates),
                                  "warmup_tokens_per_s": warm_rates})
        write_json(result_path, result)


def write_logits(model, q_ids, path, device):
    ids = torch.tensor([q_ids], dtype=torch.long, device=device)
    t0 = time.perf_counter()
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0]
    rows, vocab = logits.shape
    with open(path + ".tmp", "wb") as f:
        for i in range(0, rows, 128):
            f.write(logits[i:i + 128].float().cpu().numpy().astype("<f4").tobytes())
    os.replace(path + ".tmp", path)
    del logits
    return {"rows": int(rows), "vocab": int(vocab), "seconds": time.perf_counter() - t0}


def main():
    plan_path, result_path = sys.argv[1], sys.argv[2]
    plan = json.load(open(plan_path))
    device, dtype, attn = plan["device"], getattr(torch, plan["dtype"]), plan["attn"]
    peer = plan["mode"] == "peer"
    t0 = time.perf_counter()
    progress("load", 0, 1)
    model = Gemma4ForCausalLM.from_pretrained(plan["model_dir"], dtype=dtype, attn_implementation=attn).to(device).eval()
    progress("load", 1, 1)
    kind = "static cache + torch.compile" if peer else "eager"
    # A CPU affinity set from outside (engine/qualify/run-h200.sh BASELINE_CPUS) is part of how the baseline ran.
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = f", pinned to CPUs {cpus}" if cpus and len(cpus) < (os.cpu_count() or len(cpus)) else ""
    result = {
        "impl": f"transformers {transformers.__version__} {kind} generate ({attn}, {plan['dtype']}), torch {torch.__version__}{pinned}",
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "load_s": time.perf_counter() - t0,
        "batches": [],
        "quality": None,
    }
    write_json(result_path, result)
    with torch.no_grad():
        measure_batches(model, plan, result, result_path, peer)
    q = plan.get("quality")
    if q and not peer:
        progress("quality logits", 0, 2 if q.get("f32_logits") else 1)
        result["quality"] = write_logits(model, q["ids"], q["logits"], device)
        result["quality"]["dtype"] = plan["dtype"]
        write_json(result_path, result)
        progress("quality logits", 1, 2 if q.get("f32_logits") else 1)
        if q.get("f32_logits"):
            model = model.float()
            result["quality"]["f32"] = write_logits(model, q["ids"], q["f32_logits"], device)
            write_json(result_path, result)
            progress("quality logits", 2, 2)
    result["finished"] = True
    write_json(result_path, result)


if __name__ == "__main__":
    main()
