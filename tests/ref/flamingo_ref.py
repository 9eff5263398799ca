#!/usr/bin/env python3
"""Independent PyTorch reference for the OpenFlamingo / Multimodal-GPT forward pass.

Written from the architecture's definition (SPEC.md sections 1.1-1.5; open_clip's VisionTransformer,
OpenFlamingo v1 helpers.py, HF LlamaDecoderLayer, PEFT LoRA) with plain torch ops in float64; no
transformers, open_clip or mmgpt code. It makes tiny random models with deliberately awkward sizes,
saves them as safetensors under the upstream state-dict names, runs them and writes the inputs and
expected outputs of every stage to tests/fixtures/forward/. Run with Debian's /usr/bin/python3.
"""
import json
import math
import os
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "forward")
torch.manual_seed(1234)
DT = torch.float64

CFG = {
    "vision": {"image_size": 28, "patch_size": 7, "width": 48, "layers": 2, "heads": 3, "mlp_dim": 80,
               "eps": 1e-5, "ln_post": False},
    "perceiver": {"depth": 2, "heads": 3, "dim_head": 8, "num_latents": 5, "ff_mult": 2,
                  "max_num_media": 3, "max_num_frames": 1, "eps": 1e-5},
    "decoder": {"dim": 36, "layers": 4, "heads": 3, "ffn_dim": 52, "vocab_size": 101, "max_seq_len": 64,
                "rope_theta": 10000.0, "norm_eps": 1e-6},
    "cross_attn": {"every_n_layers": 2, "heads": 3, "dim_head": 10, "ff_mult": 2, "eps": 1e-5,
                   "media_rule": "next"},
    "tokens": {"bos": 1, "eos": 2, "pad": 100, "media": 99, "eoc": 98},
    "lora": {"r": 4, "alpha": 8.0, "dropout": 0.0, "scope": ["lang_encoder"],
             "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "to_q", "to_kv", "to_out", "ff.1", "ff.3",
                         "gate_proj"]},
}
MEDIA, PAD = CFG["tokens"]["media"], CFG["tokens"]["pad"]


# ---------------------------------------------------------------- weights (upstream names)
def make_weights(cfg):
    v, p, d, x, lo = cfg["vision"], cfg["perceiver"], cfg["decoder"], cfg["cross_attn"], cfg["lora"]
    W, P, S = v["width"], v["patch_size"], v["image_size"]
    npatch = (S // P) ** 2
    w = {}

    def rnd(*shape, s=None):
        fan = shape[-1] if len(shape) > 1 else 1
        return torch.randn(*shape, dtype=DT) * (s if s is not None else 1.0 / math.sqrt(fan))

    def ln(name, n):
        w[name + ".weight"] = 1.0 + 0.1 * torch.randn(n, dtype=DT)
        w[name + ".bias"] = 0.1 * torch.randn(n, dtype=DT)

    pre = "vision_encoder.visual"
    w[pre + ".conv1.weight"] = rnd(W, 3, P, P, s=1.0 / math.sqrt(3 * P * P))
    w[pre + ".class_embedding"] = rnd(W, s=0.5)
    w[pre + ".positional_embedding"] = rnd(npatch + 1, W, s=0.5)
    ln(pre + ".ln_pre", W)
    for i in range(v["layers"]):
        m = f"{pre}.transformer.resblocks.{i}"
        ln(m + ".ln_1", W)
        w[m + ".attn.in_proj_weight"] = rnd(3 * W, W)
        w[m + ".attn.in_proj_bias"] = rnd(3 * W, s=0.1)
        w[m + ".attn.out_proj.weight"] = rnd(W, W)
        w[m + ".attn.out_proj.bias"] = rnd(W, s=0.1)
        ln(m + ".ln_2", W)
        w[m + ".mlp.c_fc.weight"] = rnd(v["mlp_dim"], W)
        w[m + ".mlp.c_fc.bias"] = rnd(v["mlp_dim"], s=0.1)
        w[m + ".mlp.c_proj.weight"] = rnd(W, v["mlp_dim"])
        w[m + ".mlp.c_proj.bias"] = rnd(W, s=0.1)
    ln(pre + ".ln_post", W)
    w[pre + ".proj"] = rnd(W, 16)  # present in real files, unused

    inner = p["heads"] * p["dim_head"]
    w["perceiver.latents"] = rnd(p["num_latents"], W, s=1.0)
    w["perceiver.frame_embs"] = rnd(p["max_num_frames"], W, s=0.3)
    w["perceiver.media_time_embs"] = rnd(p["max_num_media"], 1, W, s=0.3)
    for i in range(p["depth"]):
        m = f"perceiver.layers.{i}"
        ln(m + ".0.norm_media", W)
        ln(m + ".0.norm_latents", W)
        w[m + ".0.to_q.weight"] = rnd(inner, W)
        w[m + ".0.to_kv.weight"] = rnd(2 * inner, W)
        w[m + ".0.to_out.weight"] = rnd(W, inner)
        ln(m + ".1.0", W)
        w[m + ".1.1.weight"] = rnd(W * p["ff_mult"], W)
        w[m + ".1.3.weight"] = rnd(W, W * p["ff_mult"])
    ln("perceiver.norm", W)

    D, V, F = d["dim"], d["vocab_size"], d["ffn_dim"]
    xi = x["heads"] * x["dim_head"]
    w["lang_encoder.model.embed_tokens.weight"] = rnd(V, D, s=1.0)
    for i in range(d["layers"]):
        m = f"lang_encoder.model.layers.{i}"
        if (i + 1) % x["every_n_layers"] == 0:
            g = m + ".gated_cross_attn_layer"
            # Non-zero gates (fresh blocks start at 0, which would hide the block).
            w[g + ".attn_gate"] = torch.tensor([0.7 + 0.2 * i], dtype=DT)
            w[g + ".ff_gate"] = torch.tensor([-0.5 + 0.1 * i], dtype=DT)
            ln(g + ".attn.norm", D)
            w[g + ".attn.to_q.weight"] = rnd(xi, D)
            w[g + ".attn.to_kv.weight"] = rnd(2 * xi, W)
            w[g + ".attn.to_out.weight"] = rnd(D, xi)
            ln(g + ".ff.0", D)
            w[g + ".ff.1.weight"] = rnd(D * x["ff_mult"], D)
            w[g + ".ff.3.weight"] = rnd(D, D * x["ff_mult"])
        dl = m + ".decoder_layer"
        w[dl + ".input_layernorm.weight"] = 1.0 + 0.1 * torch.randn(D, dtype=DT)
        for n in "qkvo":
            w[f"{dl}.self_attn.{n}_proj.weight"] = rnd(D, D)
        w[dl + ".post_attention_layernorm.weight"] = 1.0 + 0.1 * torch.randn(D, dtype=DT)
        w[dl + ".mlp.gate_proj.weight"] = rnd(F, D)
        w[dl + ".mlp.up_proj.weight"] = rnd(F, D)
        w[dl + ".mlp.down_proj.weight"] = rnd(D, F)
    w["lang_encoder.model.norm.weight"] = 1.0 + 0.1 * torch.randn(D, dtype=DT)
    # LLaMA's lm_head has no rows for the 3 added tokens: the file holds V-3 rows.
    w["lang_encoder.lm_head.weight"] = rnd(V - 3, D)

    # LoRA on the targeted modules, B random (a fresh B is zero and would test nothing).
    r = lo["r"]
    for name in list(w):
        if not name.endswith(".weight") or not name.startswith("lang_encoder."):
            continue
        mod = name[: -len(".weight")]
        if any(mod.endswith("." + t) for t in lo["targets"]):
            out_f, in_f = w[name].shape
            w[mod + ".lora_A.weight"] = rnd(r, in_f)
            w[mod + ".lora_B.weight"] = rnd(out_f, r, s=0.2)
    return w


def write_safetensors(path, tensors, dtype="F32"):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        if dtype == "BF16":
            # torch's bf16 conversion rounds to nearest even.
            raw = t.to(torch.bfloat16).contiguous().view(torch.int16)
            data = raw.numpy().tobytes()
        elif dtype == "F16":
            data = t.to(torch.float16).numpy().tobytes()
        else:
            data = t.to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def effective(w, dtype):
    """The weights as the model sees them after storage in dtype (rounded), back in float64."""
    if dtype == "BF16":
        return {k: v.to(torch.bfloat16).to(DT) for k, v in w.items()}
    if dtype == "F16":
        return {k: v.to(torch.float16).to(DT) for k, v in w.items()}
    return {k: v.to(torch.float32).to(DT) for k, v in w.items()}


# ---------------------------------------------------------------- the model, from its definition
def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def lora_linear(w, cfg, mod, x, bias=None):
    y = x @ w[mod + ".weight"].T
    if bias is not None:
        y = y + bias
    if mod + ".lora_A.weight" in w:
        s = cfg["lora"]["alpha"] / cfg["lora"]["r"]
        y = y + s * ((x @ w[mod + ".lora_A.weight"].T) @ w[mod + ".lora_B.weight"].T)
    return y


def clip_vision(w, cfg, pixels):
    v = cfg["vision"]
    pre = "vision_encoder.visual"
    W, heads = v["width"], v["heads"]
    x = torch.nn.functional.conv2d(pixels, w[pre + ".conv1.weight"], stride=v["patch_size"])  # n W g g
    x = x.reshape(x.shape[0], W, -1).permute(0, 2, 1)  # n np W
    cls = w[pre + ".class_embedding"].expand(x.shape[0], 1, W)
    x = torch.cat([cls, x], 1) + w[pre + ".positional_embedding"]
    x = layer_norm(x, w[pre + ".ln_pre.weight"], w[pre + ".ln_pre.bias"], v["eps"])
    for i in range(v["layers"]):
        m = f"{pre}.transformer.resblocks.{i}"
        h = layer_norm(x, w[m + ".ln_1.weight"], w[m + ".ln_1.bias"], v["eps"])
        q, k, vv = (h @ w[m + ".attn.in_proj_weight"].T + w[m + ".attn.in_proj_bias"]).chunk(3, -1)
        n, T, _ = q.shape
        q, k, vv = (t.reshape(n, T, heads, -1).transpose(1, 2) for t in (q, k, vv))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ vv
        a = a.transpose(1, 2).reshape(n, T, W)
        x = x + lora_linear(w, cfg, m + ".attn.out_proj", a, w[m + ".attn.out_proj.bias"])
        h = layer_norm(x, w[m + ".ln_2.weight"], w[m + ".ln_2.bias"], v["eps"])
        h = lora_linear(w, cfg, m + ".mlp.c_fc", h, w[m + ".mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h)  # QuickGELU (OpenAI CLIP)
        x = x + h @ w[m + ".mlp.c_proj.weight"].T + w[m + ".mlp.c_proj.bias"]
    if v["ln_post"]:
        x = layer_norm(x, w[pre + ".ln_post.weight"], w[pre + ".ln_post.bias"], v["eps"])
    return x[:, 1:]  # open_clip < 2.23 output_tokens: patch tokens of the last block


def perceiver(w, cfg, x):
    """x: b T F v D (lucidrains / OpenFlamingo PerceiverResampler)."""
    p = cfg["perceiver"]
    b, T, F, v, D = x.shape
    if "perceiver.frame_embs" in w and p["max_num_frames"]:
        x = x + w["perceiver.frame_embs"][:F].reshape(1, 1, F, 1, D)
    x = x.reshape(b, T, F * v, D)
    if "perceiver.media_time_embs" in w and p["max_num_media"]:
        x = x + w["perceiver.media_time_embs"][:T].reshape(1, T, 1, D)
    lat = w["perceiver.latents"].expand(b, T, -1, -1)
    h, dh = p["heads"], p["dim_head"]
    for i in range(p["depth"]):
        m = f"perceiver.layers.{i}"
        xn = layer_norm(x, w[m + ".0.norm_media.weight"], w[m + ".0.norm_media.bias"], p["eps"])
        ln = layer_norm(lat, w[m + ".0.norm_latents.weight"], w[m + ".0.norm_latents.bias"], p["eps"])
        q = lora_linear(w, cfg, m + ".0.to_q", ln)
        k, vv = lora_linear(w, cfg, m + ".0.to_kv", torch.cat([xn, ln], -2)).chunk(2, -1)
        sp = lambda t: t.reshape(*t.shape[:-1], h, dh).transpose(-2, -3)  # b T h n d
        q, k, vv = sp(q) * dh ** -0.5, sp(k), sp(vv)
        sim = q @ k.transpose(-1, -2)
        sim = sim - sim.amax(-1, keepdim=True)
        out = torch.softmax(sim, -1) @ vv
        out = out.transpose(-2, -3).reshape(b, T, -1, h * dh)
        lat = lora_linear(w, cfg, m + ".0.to_out", out) + lat
        f = layer_norm(lat, w[m + ".1.0.weight"], w[m + ".1.0.bias"], p["eps"])
        f = torch.nn.functional.gelu(lora_linear(w, cfg, m + ".1.1", f))
        lat = lora_linear(w, cfg, m + ".1.3", f) + lat
    return layer_norm(lat, w["perceiver.norm.weight"], w["perceiver.norm.bias"], p["eps"])


def gated_xattn(w, cfg, g, x, media, media_locations, attend_previous):
    """OpenFlamingo v1 GatedCrossAttentionBlock, literally: mask with -max, softmax, zero t==0 rows."""
    c = cfg["cross_attn"]
    h, dh = c["heads"], c["dim_head"]
    B, T_img, n, _ = media.shape
    xn = layer_norm(x, w[g + ".attn.norm.weight"], w[g + ".attn.norm.bias"], c["eps"])
    q = lora_linear(w, cfg, g + ".attn.to_q", xn)
    k, v = lora_linear(w, cfg, g + ".attn.to_kv", media.reshape(B, T_img * n, -1)).chunk(2, -1)
    sp = lambda t: t.reshape(B, -1, h, dh).transpose(1, 2)
    q, k, v = sp(q) * dh ** -0.5, sp(k), sp(v)
    sim = q @ k.transpose(-1, -2)  # B h Tq (T_img n)
    text_time = media_locations.long().cumsum(-1)
    if not attend_previous:
        text_time[~media_locations] += 1
        cnt = media_locations.sum(1, keepdim=True).expand_as(text_time)
        text_time[text_time > cnt] = 0
    media_time = torch.arange(T_img) + 1
    mask = text_time[:, None, :, None] == media_time.repeat_interleave(n)[None, None, None, :]
    sim = sim.masked_fill(~mask, -torch.finfo(sim.dtype).max)
    sim = sim - sim.amax(-1, keepdim=True)
    attn = torch.softmax(sim, -1)
    attn = attn.masked_fill((text_time == 0)[:, None, :, None], 0.0)
    out = (attn @ v).transpose(1, 2).reshape(B, -1, h * dh)
    out = lora_linear(w, cfg, g + ".attn.to_out", out)
    x = x + torch.tanh(w[g + ".attn_gate"]) * out
    f = layer_norm(x, w[g + ".ff.0.weight"], w[g + ".ff.0.bias"], c["eps"])
    f = torch.nn.functional.gelu(lora_linear(w, cfg, g + ".ff.1", f))
    f = lora_linear(w, cfg, g + ".ff.3", f)
    return x + torch.tanh(w[g + ".ff_gate"]) * f


def rotate_half(t):
    a, b = t.chunk(2, -1)
    return torch.cat([-b, a], -1)


def llama_layer(w, cfg, m, x, pos, key_valid):
    d = cfg["decoder"]
    B, T, D = x.shape
    H = d["heads"]
    dh = D // H
    h = rms_norm(x, w[m + ".input_layernorm.weight"], d["norm_eps"])
    q, k, v = (lora_linear(w, cfg, f"{m}.self_attn.{n}_proj", h) for n in "qkv")
    q, k, v = (t.reshape(B, T, H, dh).transpose(1, 2) for t in (q, k, v))
    inv = 1.0 / (d["rope_theta"] ** (torch.arange(0, dh, 2, dtype=DT) / dh))
    ang = pos[:, :, None].to(DT) * inv  # B T dh/2
    emb = torch.cat([ang, ang], -1)[:, None]
    cos, sin = emb.cos(), emb.sin()
    q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    s = q @ k.transpose(-1, -2) / math.sqrt(dh)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal[None, None] & key_valid[:, None, None, :]
    s = s.masked_fill(~allowed, float("-inf"))
    a = torch.softmax(s, -1).nan_to_num(0.0)
    a = (a @ v).transpose(1, 2).reshape(B, T, D)
    x = x + lora_linear(w, cfg, m + ".self_attn.o_proj", a)
    h = rms_norm(x, w[m + ".post_attention_layernorm.weight"], d["norm_eps"])
    g = lora_linear(w, cfg, m + ".mlp.gate_proj", h)
    u = lora_linear(w, cfg, m + ".mlp.up_proj", h)
    return x + lora_linear(w, cfg, m + ".mlp.down_proj", torch.nn.functional.silu(g) * u)


def flamingo(w, cfg, tokens, attn_mask, seq_images):
    """tokens B T; seq_images: list (per sequence) of pixel tensors [n_b, 3, S, S] (n_b may be 0)."""
    d, c = cfg["decoder"], cfg["cross_attn"]
    attend_previous = c["media_rule"] == "previous"
    B, T = tokens.shape
    V = d["vocab_size"]
    stages = {"vis": [], "lat": []}
    media = []
    for imgs in seq_images:
        if len(imgs) == 0:
            media.append(None)
            continue
        vt = clip_vision(w, cfg, imgs)
        stages["vis"].append(vt)
        lat = perceiver(w, cfg, vt[None, :, None])[0]  # T_img n D
        stages["lat"].append(lat)
        media.append(lat)
    x = w["lang_encoder.model.embed_tokens.weight"][tokens]
    pos = (attn_mask.long().cumsum(-1) - 1).masked_fill(~attn_mask, 1)
    layer_out = [x]
    for i in range(d["layers"]):
        m = f"lang_encoder.model.layers.{i}"
        if (i + 1) % c["every_n_layers"] == 0:
            rows = []
            for b in range(B):
                xb = x[b : b + 1]
                if media[b] is not None:  # sequences without images skip the block (only_lang_x)
                    xb = gated_xattn(w, cfg, m + ".gated_cross_attn_layer", xb, media[b][None],
                                     tokens[b : b + 1] == MEDIA, attend_previous)
                rows.append(xb)
            x = torch.cat(rows, 0)
        x = llama_layer(w, cfg, m + ".decoder_layer", x, pos, attn_mask)
        layer_out.append(x)
    h = rms_norm(x, w["lang_encoder.model.norm.weight"], d["norm_eps"])
    head = w["lang_encoder.lm_head.weight"]
    if head.shape[0] < V:  # the file's lm_head lacks the added tokens' rows: zero (SPEC 6.5)
        head = torch.cat([head, torch.zeros(V - head.shape[0], d["dim"], dtype=DT)])
    logits = h @ head.T
    vis = torch.cat(stages["vis"]) if stages["vis"] else torch.zeros(0)
    lat = torch.cat(stages["lat"]) if stages["lat"] else torch.zeros(0)
    return vis, lat, torch.stack(layer_out), logits


# ---------------------------------------------------------------- cases
def f32(t):
    return np.ascontiguousarray(t.detach().to(torch.float32).numpy())


def save_case(name, cfg, w, tokens, attn_mask, seq_images, full=True):
    vis, lat, layers, logits = flamingo(w, cfg, tokens, attn_mask, seq_images)
    tensors = {
        "tokens": torch.tensor(tokens, dtype=torch.int32) if not torch.is_tensor(tokens) else tokens.to(torch.int32),
        "attn_mask": attn_mask.to(torch.uint8),
        "images_per_seq": torch.tensor([len(s) for s in seq_images], dtype=torch.int32),
        "pixels": torch.cat([s for s in seq_images if len(s)]).to(torch.float32),
        "logits": logits.to(torch.float32),
    }
    if full:
        tensors.update({"vis_tokens": vis.to(torch.float32), "latents": lat.to(torch.float32),
                        "layer_out": layers.to(torch.float32)})
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        dt = {torch.int32: "I32", torch.uint8: "U8", torch.float32: "F32"}[t.dtype]
        data = t.contiguous().numpy().tobytes()
        header[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    print(f"{name}: logits {tuple(logits.shape)} |max| {logits.abs().max():.3f}")


def decays(name):
    """OpenFlamingo's weight-decay rule (SPEC 2.6): x-attn parameters except gates, norms, biases."""
    if "gated_cross_attn_layer" not in name:
        return False
    rest = name.split("gated_cross_attn_layer", 1)[1]
    return not any(s in rest for s in ("gate", "norm", "bias"))


def train_case(cfg, w, tokens, mask, images, labels, names=None):
    """Loss and gradients of the trainable tensors (the LoRA ones unless names are given; HF causal-LM
    loss: position t predicts labels[t+1], mean over counted labels), then two AdamW steps as
    Multimodal-GPT runs them: clip_grad_norm_(1.0), lr 1e-2 here, betas (0.9, 0.999), eps 1e-8,
    weight decay 0.1 by OpenFlamingo's rule."""
    names = names or [k for k in w if ".lora_" in k]
    w = {k: (v.clone().requires_grad_(True) if k in names else v) for k, v in w.items()}
    decay = [w[k] for k in names if decays(k)]
    other = [w[k] for k in names if not decays(k)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    out = {}
    for step in range(2):
        opt.zero_grad()
        _, _, _, logits = flamingo(w, cfg, tokens, mask, images)
        V = logits.shape[-1]
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
        loss.backward()
        if step == 0:
            out["loss"] = loss.detach().reshape(1).to(torch.float32)
            for k in names:  # a tensor the loss does not reach (ln_post when unused) has no .grad
                g = w[k].grad if w[k].grad is not None else torch.zeros_like(w[k])
                out["grad." + k] = g.detach().to(torch.float32).clone()
        torch.nn.utils.clip_grad_norm_([w[k] for k in names if w[k].grad is not None], 1.0)
        opt.step()
        for k in names:
            out[f"step{step + 1}." + k] = w[k].detach().to(torch.float32).clone()
    print(f"train: loss {out['loss'].item():.5f}, {len(names)} trainable tensors")
    return out


def save_tensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        dt = {torch.int32: "I32", torch.uint8: "U8", torch.float32: "F32"}[t.dtype]
        data = t.contiguous().numpy().tobytes()
        header[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    os.makedirs(os.path.join(OUT, "tiny"), exist_ok=True)
    w = make_weights(CFG)
    write_safetensors(os.path.join(OUT, "tiny", "model.safetensors"), w)
    with open(os.path.join(OUT, "tiny", "config.json"), "w") as f:
        json.dump(CFG, f, indent=1)
    write_safetensors(os.path.join(OUT, "model_bf16.safetensors"), w, "BF16")
    write_safetensors(os.path.join(OUT, "model_f16.safetensors"), w, "F16")
    w32, wbf, wh = effective(w, "F32"), effective(w, "BF16"), effective(w, "F16")
    S = CFG["vision"]["image_size"]
    img = lambda n: torch.randn(n, 3, S, S, dtype=DT)

    # Batch of three: text before the first image, two images back to back, text after the last;
    # a left-padded sequence with one image; a text-only sequence (gated blocks skipped).
    M = MEDIA
    T = 14
    seq0 = [1, 5, 6, M, M, 7, 8, 9, M, 10, 11, 12, 13, 14]
    seq1 = [PAD, PAD, PAD, 1, 20, 21, M, 22, 23, 24, 25, 26, 27, 28]
    seq2 = [1, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42]
    tokens = torch.tensor([seq0, seq1, seq2])
    mask = torch.ones(3, T, dtype=torch.bool)
    mask[1, :3] = False
    images = [img(3), img(1), img(0)]
    save_case("batch_next", CFG, w32, tokens, mask, images)
    prev = json.loads(json.dumps(CFG))
    prev["cross_attn"]["media_rule"] = "previous"
    with open(os.path.join(OUT, "config_previous.json"), "w") as f:
        json.dump(prev, f, indent=1)
    save_case("batch_previous", prev, w32, tokens, mask, images)
    save_case("batch_bf16", CFG, wbf, tokens, mask, images, full=False)
    save_case("batch_f16", CFG, wh, tokens, mask, images, full=False)
    # More <image> markers than images: the third marker's tokens match no image (uniform attention).
    mism = torch.tensor([[1, 5, M, 6, M, 7, M, 8, 9]])
    save_case("mismatch", CFG, w32, mism, torch.ones(1, 9, dtype=torch.bool), [img(2)], full=False)
    # open_clip >= 2.23 tap (ln_post on every token).
    post = json.loads(json.dumps(CFG))
    post["vision"]["ln_post"] = True
    with open(os.path.join(OUT, "config_ln_post.json"), "w") as f:
        json.dump(post, f, indent=1)
    save_case("ln_post", post, w32, torch.tensor([[1, M, 5, 6]]), torch.ones(1, 4, dtype=torch.bool), [img(1)])
    # Training: the same batch with labels masked as the template masks them (prompt, media, padding).
    labels = tokens.clone()
    labels[:, :7] = -100
    labels[~mask] = -100
    labels[tokens == M] = -100
    labels[2, :4] = -100
    tr = train_case(CFG, w32, tokens, mask, images, labels)
    tr.update({"tokens": tokens.to(torch.int32), "attn_mask": mask.to(torch.uint8), "labels": labels.to(torch.int32),
               "images_per_seq": torch.tensor([3, 1, 0], dtype=torch.int32),
               "pixels": torch.cat([i for i in images if len(i)]).to(torch.float32)})
    save_tensors(os.path.join(OUT, "train.safetensors"), tr)
    # Greedy continuation (no cache: a full forward per step), the added tokens never chosen.
    seq = [1, 7, M, 8, 9, 10]
    gimg = images[0][:1]
    for _ in range(10):
        _, _, _, lg = flamingo(w32, CFG, torch.tensor([seq]), torch.ones(1, len(seq), dtype=torch.bool), [gimg])
        last = lg[0, -1].clone()
        last[98:] = -float("inf")
        seq.append(int(last.argmax()))
    save_tensors(os.path.join(OUT, "greedy.safetensors"),
                 {"prompt": torch.tensor([1, 7, M, 8, 9, 10], dtype=torch.int32),
                  "continuation": torch.tensor(seq[6:], dtype=torch.int32), "pixels": gimg.to(torch.float32)})
    print("greedy:", seq[6:])
    # For the CLI: one sequence, two images, as --tokens and --pixels.
    cli_tok = [1, 7, M, 8, 9, M, 10, 11]
    cli_img = img(2)
    _, _, _, logits = flamingo(w32, CFG, torch.tensor([cli_tok]), torch.ones(1, 8, dtype=torch.bool), [cli_img])
    np.save(os.path.join(OUT, "cli_pixels.npy"), f32(cli_img))
    np.save(os.path.join(OUT, "cli_logits.npy"), f32(logits[0]))
    with open(os.path.join(OUT, "cli_tokens.txt"), "w") as f:
        f.write(",".join(map(str, cli_tok)) + "\n")

    # Training beyond the adapters: LoRA on the perceiver too, and whole tensors unfrozen by name
    # (gates, embeddings, lm_head, norms, perceiver latents/embeddings, plain matrices, and a matrix
    # that also has an adapter). The C test loads tiny/ with this config and the "init." adapters.
    unf_cfg = json.loads(json.dumps(CFG))
    unf_cfg["lora"]["scope"] = ["lang_encoder", "perceiver"]
    unf_cfg["lora"]["targets"] = CFG["lora"]["targets"] + ["1.3"]
    unfrozen = ["_gate", "embed_tokens", "lm_head", "model.norm", "post_attention_layernorm",
                "gated_cross_attn_layer.ff.0", "attn.norm", "perceiver.latents", "media_time_embs", "frame_embs",
                "perceiver.norm", "norm_media", "norm_latents", "perceiver.layers.0.1.1.weight", "mlp.up_proj",
                "layers.3.decoder_layer.self_attn.q_proj.weight"]
    wu = dict(w32)
    V = CFG["decoder"]["vocab_size"]
    wu["lang_encoder.lm_head.weight"] = torch.cat([wu["lang_encoder.lm_head.weight"],
                                                   torch.zeros(3, CFG["decoder"]["dim"], dtype=DT)])
    r = CFG["lora"]["r"]
    for i in range(CFG["perceiver"]["depth"]):
        for mod, in_f, out_f in (("0.to_q", 48, 24), ("0.to_kv", 48, 48), ("0.to_out", 24, 48), ("1.3", 96, 48)):
            name = f"perceiver.layers.{i}.{mod}"
            wu[name + ".lora_A.weight"] = torch.randn(r, in_f, dtype=DT) / math.sqrt(in_f)
            wu[name + ".lora_B.weight"] = torch.randn(out_f, r, dtype=DT) * 0.2
    names = [k for k in wu if ".lora_" in k or (not k.startswith("vision_encoder.") and any(u in k for u in unfrozen))]
    tu = train_case(unf_cfg, wu, tokens, mask, images, labels, names)
    tu.update({"init." + k: torch.from_numpy(f32(wu[k])) for k in wu if ".lora_" in k})
    tu.update({k: tr[k] for k in ("tokens", "attn_mask", "labels", "images_per_seq", "pixels")})
    with open(os.path.join(OUT, "unfrozen.json"), "w") as f:
        json.dump({"lora": unf_cfg["lora"], "unfrozen": unfrozen, "trainable": names}, f, indent=1)
    save_tensors(os.path.join(OUT, "train_unfrozen.safetensors"), tu)

    # Training the vision tower too (a model trained from scratch does): every CLIP tensor unfrozen,
    # ln_post applied (open_clip >= 2.23 tap) so that it has a gradient, LoRA on two CLIP linears.
    vis_cfg = json.loads(json.dumps(CFG))
    vis_cfg["vision"]["ln_post"] = True
    vis_cfg["lora"]["scope"] = ["lang_encoder", "vision_encoder"]
    vis_cfg["lora"]["targets"] = CFG["lora"]["targets"] + ["out_proj", "c_fc"]
    wv = dict(w32)
    W, MLP = CFG["vision"]["width"], CFG["vision"]["mlp_dim"]
    for i in range(CFG["vision"]["layers"]):
        m = f"vision_encoder.visual.transformer.resblocks.{i}"
        for mod, in_f, out_f in ((".attn.out_proj", W, W), (".mlp.c_fc", W, MLP)):
            wv[m + mod + ".lora_A.weight"] = torch.randn(r, in_f, dtype=DT) / math.sqrt(in_f)
            wv[m + mod + ".lora_B.weight"] = torch.randn(out_f, r, dtype=DT) * 0.2
    vis_unfrozen = ["vision_encoder", "perceiver.latents"]
    names = [k for k in wv if ".lora_" in k or (k != "vision_encoder.visual.proj" and any(u in k for u in vis_unfrozen))]
    tv = train_case(vis_cfg, wv, tokens, mask, images, labels, names)
    tv.update({"init." + k: torch.from_numpy(f32(wv[k])) for k in wv if ".lora_" in k})
    tv.update({k: tr[k] for k in ("tokens", "attn_mask", "labels", "images_per_seq", "pixels")})
    with open(os.path.join(OUT, "vision.json"), "w") as f:
        json.dump({"lora": vis_cfg["lora"], "unfrozen": vis_unfrozen, "trainable": names, "ln_post": True}, f, indent=1)
    save_tensors(os.path.join(OUT, "train_vision.safetensors"), tv)

if __name__ == "__main__":
    main()
