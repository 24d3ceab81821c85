#!/usr/bin/env python3
"""HF transformers eager `generate` decode rate on a checkpoint, the baseline beside vkae-engine's bench.

Decode rate = new tokens / (time(N new) - time(1 new)), batch x (N - 1) tokens over the difference, as in
shared/reference/performance-anchors.md. The prompt ids come from vkae-engine's bench report, so both sides
decode the same tokens from the same weights. Prints one JSON object (and writes it to --out).
"""

import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import Gemma4ForCausalLM


def timed_generate(model, ids, new, device):
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
    )
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--engine-report", required=True, help="vkae-engine bench JSON (prompt ids, max_new)")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--out")
    a = ap.parse_args()

    report = json.load(open(a.engine_report))
    prompt = report["prompt_ids"]
    new = report["max_new"]
    dtype = getattr(torch, a.dtype)
    t0 = time.perf_counter()
    model = Gemma4ForCausalLM.from_pretrained(a.model, dtype=dtype, attn_implementation=a.attn).to(a.device).eval()
    load_s = time.perf_counter() - t0
    results = []
    batch1_tokens = None
    with torch.no_grad():
        for b in [int(x) for x in a.batches.split(",")]:
            ids = torch.tensor([prompt] * b, dtype=torch.long, device=a.device)
            timed_generate(model, ids, 2, a.device)  # warm-up
            rates = []
            for _ in range(a.reps):
                t1, _ = timed_generate(model, ids, 1, a.device)
                tn, out = timed_generate(model, ids, new, a.device)
                rates.append(b * (new - 1) / (tn - t1))
                if b == 1:
                    batch1_tokens = out[0, len(prompt):].tolist()
            results.append({
                "batch": b,
                "tokens_per_s": rates,
                "median": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "ms_per_step": 1000.0 * b / statistics.median(rates),
            })
    res = {
        "impl": f"transformers {transformers.__version__} eager generate ({a.attn}, {a.dtype})",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
        "load_s": load_s,
        "max_new": new,
        "results": results,
        "batch1_tokens": batch1_tokens,
    }
    text = json.dumps(res)
    if a.out:
        open(a.out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
