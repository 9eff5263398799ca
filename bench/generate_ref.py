#!/usr/bin/env python3
"""PyTorch CPU timing of cached greedy generation on the mid-sized Flamingo of bench/forward_ref.py:
time to first token (image + prompt), prompt tokens/s and generated tokens/s with a K/V cache (the
cross-attention keys/values of the image computed once), float32, no_grad. A third argument B > 1 also
times batched decoding: B sequences advance together, one [B, 1] step per token (all tokens/s)."""
import math
import os
import sys
import time

import torch

# Same thread count as mmgpt's OpenMP (Debian's torch may start with fewer than the cores).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
P = int(sys.argv[1]) if len(sys.argv) > 1 else 128
G = int(sys.argv[2]) if len(sys.argv) > 2 else 64
B = int(sys.argv[3]) if len(sys.argv) > 3 else 1
sys.argv = [sys.argv[0], str(P), "0"]
import forward_ref as fr  # noqa: E402

ref, cfg, w = fr.ref, fr.cfg, fr.w
d, xc = cfg["decoder"], cfg["cross_attn"]
D, H, L = d["dim"], d["heads"], d["layers"]
dh = D // H


def lin(mod, x):
    return ref.lora_linear(w, cfg, mod, x)


def step(x, pos, cache, media, q_media):
    """x [B, T, D] new rows at positions pos [T]; cache: per layer (k, v) lists; media latents [n, D]."""
    Bx, T = x.shape[0], x.shape[1]
    inv = 1.0 / (d["rope_theta"] ** (torch.arange(0, dh, 2, dtype=torch.float32) / dh))
    ang = pos[:, None].float() * inv
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos(), emb.sin()
    for i in range(L):
        m = f"lang_encoder.model.layers.{i}"
        if (i + 1) % xc["every_n_layers"] == 0:
            g = m + ".gated_cross_attn_layer"
            xn = ref.layer_norm(x, w[g + ".attn.norm.weight"], w[g + ".attn.norm.bias"], xc["eps"])
            q = lin(g + ".attn.to_q", xn).reshape(Bx, T, xc["heads"], -1).transpose(1, 2) * xc["dim_head"] ** -0.5
            k, v = cache["xkv"][i]
            a = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
            a = a * (q_media[None, None, :, None] > 0)
            a = a.transpose(1, 2).reshape(Bx, T, -1)
            x = x + math.tanh(w[g + ".attn_gate"].item()) * lin(g + ".attn.to_out", a)
            f = ref.layer_norm(x, w[g + ".ff.0.weight"], w[g + ".ff.0.bias"], xc["eps"])
            x = x + math.tanh(w[g + ".ff_gate"].item()) * lin(g + ".ff.3", torch.nn.functional.gelu(lin(g + ".ff.1", f)))
        dl = m + ".decoder_layer"
        hh = ref.rms_norm(x, w[dl + ".input_layernorm.weight"], d["norm_eps"])
        q, k, v = (lin(f"{dl}.self_attn.{n}_proj", hh).reshape(Bx, T, H, dh).transpose(1, 2) for n in "qkv")
        q, k = q * cos + ref.rotate_half(q) * sin, k * cos + ref.rotate_half(k) * sin
        if cache["kv"][i] is not None:
            k = torch.cat([cache["kv"][i][0], k], 2)
            v = torch.cat([cache["kv"][i][1], v], 2)
        cache["kv"][i] = (k, v)
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        Tk = k.shape[2]
        causal = torch.ones(T, Tk, dtype=torch.bool).tril(Tk - T)
        s = s.masked_fill(~causal, float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(Bx, T, D)
        x = x + lin(dl + ".self_attn.o_proj", a)
        hh = ref.rms_norm(x, w[dl + ".post_attention_layernorm.weight"], d["norm_eps"])
        x = x + lin(dl + ".mlp.down_proj", torch.nn.functional.silu(lin(dl + ".mlp.gate_proj", hh)) * lin(dl + ".mlp.up_proj", hh))
    h = ref.rms_norm(x[:, -1], w["lang_encoder.model.norm.weight"], d["norm_eps"])
    return h @ w["lang_encoder.lm_head.weight"].T


def run(Bs=1):
    prompt = fr.tokens[0, :P]
    t0 = time.perf_counter()
    vt = ref.clip_vision(w, cfg, fr.pix)
    lat = ref.perceiver(w, cfg, vt[None, :, None])[0, 0]
    cache = {"kv": [None] * L, "xkv": {}}
    for i in range(L):
        if (i + 1) % xc["every_n_layers"] == 0:
            g = f"lang_encoder.model.layers.{i}.gated_cross_attn_layer"
            k, v = lin(g + ".attn.to_kv", lat).chunk(2, -1)
            cache["xkv"][i] = tuple(t.reshape(1, -1, xc["heads"], xc["dim_head"]).transpose(1, 2).expand(Bs, -1, -1, -1)
                                    for t in (k, v))
    t1 = time.perf_counter()
    # Media index of the prompt rows (rule "next": up to the marker attend image 1, after it nothing).
    marker = int((prompt == fr.ref.MEDIA).nonzero()[0])
    qm = (torch.arange(P) <= marker).float()
    emb = w["lang_encoder.model.embed_tokens.weight"]
    logits = step(emb[prompt][None].expand(Bs, -1, -1), torch.arange(P), cache, lat, qm)
    tok = logits.argmax(-1)
    t2 = time.perf_counter()
    for j in range(G - 1):
        logits = step(emb[tok][:, None], torch.tensor([P + j]), cache, lat, torch.zeros(1))
        tok = logits.argmax(-1)
    t3 = time.perf_counter()
    return t2 - t0, P / (t2 - t1), Bs * (G - 1) / (t3 - t2)


with torch.no_grad():
    run()
    ttft, ptps, gtps = run()
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
print(f"torch_ttft_s {ttft:.4f}\ntorch_prompt_tps {ptps:.1f}\ntorch_gen_tps {gtps:.2f}")
if B > 1:
    with torch.no_grad():
        btps = run(B)[2]
    print(f"torch_batch_tps {btps:.2f}")
