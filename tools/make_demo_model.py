#!/usr/bin/env python3
"""Makes models/tiny-random: a small Flamingo with random weights and a real SentencePiece
vocabulary, so `make run` shows the whole pipeline (tokenizer, image preprocessing, CLIP, perceiver,
gated cross-attention, LLaMA) on this machine with nothing to download. Its answers are noise: the
trained demo model replaces it (see the demo-model issue). Also draws examples/shapes.png.
Run with Debian's /usr/bin/python3 (python3-torch, python3-sentencepiece, python3-pil)."""
import glob
import json
import os
import sys

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import flamingo_ref as ref  # noqa: E402

OUT = os.path.join(ROOT, "models", "tiny-random")


def corpus(path):
    header = ("Below is an instruction that describes a task. Write a response that appropriately "
              "completes the request.")
    lines = [header, "### Image:", "### Instruction:", "### Response:", "What is in this image?",
             "A red circle and a blue square on a white background.", "How many shapes are there?"]
    for f in sorted(glob.glob("/usr/share/common-licenses/*"))[:12]:
        try:
            with open(f, encoding="utf-8") as fh:
                lines += [ln.strip() for ln in fh if ln.strip()]
        except (UnicodeDecodeError, IsADirectoryError):
            pass
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines * 1) + "\n")


def main():
    import sentencepiece as spm
    from PIL import Image, ImageDraw

    os.makedirs(OUT, exist_ok=True)
    txt = "/tmp/mmgpt-demo-corpus.txt"
    corpus(txt)
    spm.SentencePieceTrainer.train(
        input=txt, model_prefix=os.path.join(OUT, "tokenizer"), vocab_size=500, model_type="bpe",
        byte_fallback=True, split_digits=True, add_dummy_prefix=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, character_coverage=0.9995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    os.remove(os.path.join(OUT, "tokenizer.vocab"))
    cfg = {
        "vision": {"image_size": 224, "patch_size": 32, "width": 64, "layers": 2, "heads": 2, "mlp_dim": 128,
                   "eps": 1e-5, "ln_post": False},
        "perceiver": {"depth": 1, "heads": 2, "dim_head": 32, "num_latents": 8, "ff_mult": 2,
                      "max_num_media": None, "max_num_frames": None, "eps": 1e-5},
        "decoder": {"dim": 64, "layers": 2, "heads": 4, "ffn_dim": 172, "vocab_size": 503, "max_seq_len": 512,
                    "rope_theta": 10000.0, "norm_eps": 1e-6},
        "cross_attn": {"every_n_layers": 2, "heads": 2, "dim_head": 32, "ff_mult": 2, "eps": 1e-5,
                       "media_rule": "next"},
        "tokens": {"bos": 1, "eos": 2, "eoc": 500, "media": 501, "pad": 502},
        "lora": None,
    }
    torch.manual_seed(7)
    ref.DT = torch.float32
    cfg_w = dict(cfg, lora={"r": 1, "alpha": 1, "targets": [], "scope": []},
                 perceiver=dict(cfg["perceiver"], max_num_media=0, max_num_frames=0))
    w = ref.make_weights(cfg_w)
    w = {k: v for k, v in w.items() if "frame_embs" not in k and "media_time_embs" not in k}
    ref.write_safetensors(os.path.join(OUT, "model.safetensors"), w)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)

    img = Image.new("RGB", (320, 240), (245, 245, 240))
    d = ImageDraw.Draw(img)
    d.ellipse((40, 60, 140, 160), fill=(220, 40, 40))
    d.rectangle((180, 70, 270, 160), fill=(40, 80, 220))
    img.save(os.path.join(ROOT, "examples", "shapes.png"))


if __name__ == "__main__":
    main()
