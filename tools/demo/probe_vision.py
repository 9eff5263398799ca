#!/usr/bin/env python3
"""Where does shape information get lost in the demo model? (a diagnostic for MODEL_CARD.md)

Runs the vision tower and the perceiver of a demo checkpoint (safetensors under upstream names, as
`mmgpt init` and `mmgpt train` write them) with the independent PyTorch reference
(tests/ref/flamingo_ref.py) on training scenes of tools/synth, labels every grid cell by matching its
pixels against the synth's shape masks, and reports:
  - linear-probe accuracy of "which shape is in this cell" from raw pixels, from the ViT patch tokens
    of the initial model and from those of the trained one (held-out quarter of the cells);
  - the perceiver's attention: entropy, the share on image tokens, and whether it depends on the image;
  - with --direct, the control: the same ViT from the same initial weights trained on the cell labels
    directly (a linear head on each patch token, Adam 1e-3, 16 scenes a step), held-out accuracy.

  /usr/bin/python3 tools/demo/probe_vision.py [--direct] WORK [CHECKPOINT]
WORK is the recipe's scratch directory (default of tools/train-demo.sh: /tmp/mmgpt-demo); CHECKPOINT
defaults to the last full-training checkpoint in it. Dev tool: needs python3-torch and python3-pil.
"""
import glob
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "ref"))
import flamingo_ref as F  # noqa: E402

torch.manual_seed(0)
DIRECT = "--direct" in sys.argv
ARGS = [a for a in sys.argv[1:] if a != "--direct"]
WORK = ARGS[0] if ARGS else "/tmp/mmgpt-demo"
CKPT = ARGS[1] if len(ARGS) > 1 else sorted(glob.glob(f"{WORK}/pre/checkpoint-*/unfrozen.safetensors"),
                                                     key=lambda p: int(p.split("-")[-1].split("/")[0]))[-1]
CFG = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.json")))
CFG["lora"] = {"r": 1, "alpha": 1, "dropout": 0, "scope": [], "targets": []}
N = 1500  # scenes; 9 cells each
CELL = CFG["vision"]["patch_size"]


def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k != "__metadata__":
            s, e = v["data_offsets"]
            a = np.frombuffer(b[8 + n + s:8 + n + e], dtype=np.float32).reshape(v["shape"])
            out[k] = torch.tensor(a.copy(), dtype=torch.float64)
    return out


# The synth's masks (tools/synth.c inside()): circle, square, triangle, diamond; radius 7/16 or 5/16 of a cell.
yy, xx = np.mgrid[0:CELL, 0:CELL] - CELL // 2


def mask(shape, r):
    adx, ady = abs(xx), abs(yy)
    return [xx * xx + yy * yy <= r * r, (adx <= r * 4 // 5) & (ady <= r * 4 // 5),
            (yy >= -r) & (yy <= r * 3 // 4) & (adx * 2 <= yy + r), adx + ady <= r][shape]


MASKS = [(s, mask(s, r)) for s in range(4) for r in (CELL * 7 // 16, CELL * 5 // 16)]


def cell_labels(img):  # 0-3 the shape, 4 empty or a glyph
    out = []
    for c in range(9):
        cy, cx = divmod(c, 3)
        p = img[cy * CELL:(cy + 1) * CELL, cx * CELL:(cx + 1) * CELL].astype(int)
        fg = np.abs(p - p[0, 0]).sum(-1) > 60
        out.append(next((s for s, m in MASKS if (fg == m).mean() > 0.97), 4))
    return out


def probe(feat, y, name):
    feat = feat.float()
    tr = int(len(feat) * 0.75)
    mu, sd = feat[:tr].mean(0), feat[:tr].std(0) + 1e-6
    feat = (feat - mu) / sd
    lin = torch.nn.Linear(feat.shape[1], int(y.max()) + 1)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(500):
        loss = torch.nn.functional.cross_entropy(lin(feat[:tr]), y[:tr])
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (lin(feat[tr:]).argmax(-1) == y[tr:]).float().mean().item()
    major = np.bincount(y[tr:].numpy()).max() / len(y[tr:])
    print(f"  {name:44s} {acc:.3f}   (majority class {major:.3f})")


def main():
    imgs = [np.array(Image.open(f"{WORK}/data/images/train{i:05d}.png").convert("RGB")) for i in range(N)]
    y = torch.tensor([cell_labels(im) for im in imgs])
    x = np.stack(imgs) / 255.0
    x = (x - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array([0.26862954, 0.26130258, 0.27577711])
    x = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64)
    trained, init = load(CKPT), load(f"{WORK}/init/model.safetensors")
    with torch.no_grad():
        tok, tok0 = F.clip_vision(trained, CFG, x), F.clip_vision(init, CFG, x)
    obj = y.reshape(-1) < 4
    print(f"{CKPT}: {N} scenes, {int(obj.sum())} object cells")
    print("linear probe, shape of an object cell (4 classes), held-out accuracy:")
    pix = x.reshape(N, 3, 3, CELL, 3, CELL).permute(0, 2, 4, 1, 3, 5).reshape(N * 9, -1)
    probe(pix[obj], y.reshape(-1)[obj], "raw pixels of the cell")
    probe(tok0.reshape(N * 9, -1)[obj], y.reshape(-1)[obj], "ViT patch token, initial model")
    probe(tok.reshape(N * 9, -1)[obj], y.reshape(-1)[obj], "ViT patch token, trained model")

    p, w = CFG["perceiver"], trained
    h, dh, m = p["heads"], p["dim_head"], "perceiver.layers.0.0"
    media = tok.reshape(N, 1, 9, -1) + w["perceiver.frame_embs"][0] + w["perceiver.media_time_embs"][0]
    lat = w["perceiver.latents"].expand(N, 1, -1, -1)
    xn = F.layer_norm(media, w[m + ".norm_media.weight"], w[m + ".norm_media.bias"], p["eps"])
    ln = F.layer_norm(lat, w[m + ".norm_latents.weight"], w[m + ".norm_latents.bias"], p["eps"])
    q = ln @ w[m + ".to_q.weight"].T
    k, _ = (torch.cat([xn, ln], -2) @ w[m + ".to_kv.weight"].T).chunk(2, -1)
    sp = lambda t: t.reshape(*t.shape[:-1], h, dh).transpose(-2, -3)  # noqa: E731
    a = torch.softmax(sp(q) * dh ** -0.5 @ sp(k).transpose(-1, -2), -1)  # N 1 h latents (9 + latents)
    ent = -(a * a.clamp_min(1e-12).log()).sum(-1).mean().item()
    argmax = a[..., :9].argmax(-1)[:, 0]  # N h latents
    distinct = [len(set(argmax[:, i, j].tolist())) for i in range(h) for j in range(argmax.shape[-1])]
    print("perceiver (first layer):")
    print(f"  attention entropy {ent:.2f} nats (uniform {math.log(a.shape[-1]):.2f}), "
          f"largest weight {a.max(-1).values.mean().item():.2f}")
    print(f"  share of attention on the 9 image tokens {a[..., :9].sum(-1).mean().item():.2f} (rest: the latents)")
    print(f"  most-attended image token varies with the image: {min(distinct)}-{max(distinct)} distinct per query")
    if DIRECT:
        direct(init, x, y)


def direct(init, x, y, steps=300, batch=16):
    """The ViT alone, from the same initial weights, with the cell labels as its loss."""
    w = {k: v.clone().requires_grad_(k.startswith("vision_encoder.")) for k, v in init.items()}
    head = torch.nn.Linear(CFG["vision"]["width"], 5).double()
    params = [v for v in w.values() if v.requires_grad] + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    held = N - 400
    for step in range(1, steps + 1):
        i = torch.randint(0, held, (batch,))
        loss = torch.nn.functional.cross_entropy(head(F.clip_vision(w, CFG, x[i])).reshape(-1, 5), y[i].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                pred = head(F.clip_vision(w, CFG, x[held:])).argmax(-1)
            obj = y[held:] < 4
            acc = (pred[obj] == y[held:][obj]).double().mean().item()
            print(f"  direct supervision, step {step}: held-out shape accuracy of object cells {acc:.3f}")


if __name__ == "__main__":
    main()
