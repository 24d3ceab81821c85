#!/usr/bin/env python3
"""Side-by-side table of vkae-engine bench and HF transformers generate reports (markdown on stdout)."""
import json
import os
import sys

ours = json.load(open(sys.argv[1]))
hf = json.load(open(sys.argv[2])) if len(sys.argv) > 2 and os.path.exists(sys.argv[2]) else None
print(f"model: {ours['model']} on {ours['device']}; prompt {len(ours['prompt_ids'])} tokens, "
      f"{ours['timed_steps']} timed decode steps, {ours['reps']} reps (median [min, max])")
print()
print("| batch | vkae-engine generic (tok/s) | HF transformers eager (tok/s) | ratio |")
print("|---|---|---|---|")
hf_by_batch = {r["batch"]: r for r in hf["results"]} if hf else {}
for r in ours["results"]:
    h = hf_by_batch.get(r["batch"])
    hs = f"{h['median']:.1f} [{h['min']:.1f}, {h['max']:.1f}]" if h else "-"
    ratio = f"{r['median'] / h['median']:.2f}x" if h else "-"
    print(f"| {r['batch']} | {r['median']:.1f} [{r['min']:.1f}, {r['max']:.1f}] | {hs} | {ratio} |")
print()
gb = ours.get("batch1_achieved_gb_per_s")
if gb:
    print(f"batch 1: {ours['bytes_streamed_per_token'] / 1e9:.2f} GB streamed per step -> {gb:.0f} GB/s achieved")
if hf and hf.get("batch1_tokens") and ours.get("batch1_tokens"):
    a, b = ours["batch1_tokens"], hf["batch1_tokens"]
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    print(f"batch-1 greedy tokens: first {same} of {min(len(a), len(b))} equal to transformers' ({hf['impl']})")
