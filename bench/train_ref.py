#!/usr/bin/env python3
"""PyTorch CPU timing of the same LoRA training step as bench/train.c: forward, masked cross-entropy,
backward into the adapters only (frozen weights without grad), clip_grad_norm_, AdamW."""
import os
import sys
import time

import torch

# Same thread count as mmgpt's OpenMP (Debian's torch may start with fewer than the cores).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.argv = [sys.argv[0]] + sys.argv[1:]
import forward_ref as fr  # noqa: E402  (builds cfg, weights, inputs; times nothing at import with REPS=0)

ref, cfg, w, pix, T = fr.ref, fr.cfg, fr.w, fr.pix, fr.T
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
names = [k for k in w if ".lora_" in k]
for k in names:
    w[k] = w[k].clone().requires_grad_(True)
decay = [w[k] for k in names if "gated_cross_attn_layer" in k]
other = [w[k] for k in names if "gated_cross_attn_layer" not in k]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}], lr=1e-5)
tokens = fr.tokens
labels = tokens.clone()
labels[:, : T // 2] = -100
mask = torch.ones(1, T, dtype=torch.bool)
best = 1e9
for rep in range(REPS + 1):
    t0 = time.perf_counter()
    opt.zero_grad()
    with torch.no_grad():  # the vision tower and perceiver are frozen: their outputs are constants
        pass
    _, _, _, logits = ref.flamingo(w, cfg, tokens, mask, [pix])
    V = logits.shape[-1]
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([w[k] for k in names], 1.0)
    opt.step()
    dt = time.perf_counter() - t0
    if rep > 0:
        best = min(best, dt)
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, loss {loss.item():.3f}")
print(f"torch_step_s {best:.4f}  ({T / best:.1f} tokens/s)")
