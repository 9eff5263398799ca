#!/usr/bin/env python3
"""PyTorch CPU timing of the same mid-sized Flamingo as bench/forward.c (float32, no_grad), using the
reference model of tests/ref/flamingo_ref.py. Prints the same keys as the C benchmark."""
import os
import sys
import time

import torch

# Same thread count as mmgpt's OpenMP (Debian's torch may start with fewer than the cores).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import flamingo_ref as ref  # noqa: E402

T = int(sys.argv[1]) if len(sys.argv) > 1 else 256
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ref.DT = torch.float32
cfg = {
    "vision": {"image_size": 224, "patch_size": 16, "width": 768, "layers": 12, "heads": 12, "mlp_dim": 3072,
               "eps": 1e-5, "ln_post": False},
    "perceiver": {"depth": 6, "heads": 8, "dim_head": 64, "num_latents": 64, "ff_mult": 4, "max_num_media": 0,
                  "max_num_frames": 0, "eps": 1e-5},
    "decoder": {"dim": 1024, "layers": 8, "heads": 16, "ffn_dim": 2816, "vocab_size": 32003, "max_seq_len": 2048,
                "rope_theta": 10000.0, "norm_eps": 1e-6},
    "cross_attn": {"every_n_layers": 4, "heads": 8, "dim_head": 64, "ff_mult": 4, "eps": 1e-5, "media_rule": "next"},
    "tokens": {"bos": 1, "eos": 2, "pad": 32002, "media": 32001, "eoc": 32000},
    "lora": {"r": 16, "alpha": 16.0, "dropout": 0.0, "scope": ["lang_encoder"],
             "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "to_q", "to_kv", "to_out", "ff.1", "ff.3"]},
}
ref.MEDIA = cfg["tokens"]["media"]
torch.manual_seed(0)
w = ref.make_weights(cfg)
w.pop("perceiver.frame_embs", None)
w.pop("perceiver.media_time_embs", None)
pix = torch.randn(1, 3, 224, 224)
tokens = torch.tensor([[1] + [3 + (i * 7919) % 31990 for i in range(1, T)]])
tokens[0, 5] = ref.MEDIA
mask = torch.ones(1, T, dtype=torch.bool)
best_vis = best_all = 1e9
if __name__ != "__main__":
    REPS = -1  # imported by train_ref.py for the shared setup only
with torch.no_grad():
    for rep in range(REPS + 1):
        t0 = time.perf_counter()
        vt = ref.clip_vision(w, cfg, pix)
        ref.perceiver(w, cfg, vt[None, :, None])
        t1 = time.perf_counter()
        ref.flamingo(w, cfg, tokens, mask, [pix])
        t2 = time.perf_counter()
        if rep == 0:
            continue
        best_vis = min(best_vis, t1 - t0)
        best_all = min(best_all, t2 - t1)
if __name__ == "__main__":
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"torch_vision_s {best_vis:.4f}  ({1 / best_vis:.1f} images/s)")
    print(f"torch_decoder_s {best_all - best_vis:.4f}  ({T / (best_all - best_vis):.1f} tokens/s)")
    print(f"torch_total_s {best_all:.4f}")
