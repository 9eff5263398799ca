#!/usr/bin/env python3
"""The same work in Python as upstream does it: the template string + sentencepiece encode (with the prompt
encoded again for the mask, as VQADataset.tokenize does), and PIL open + convert('RGB') + bicubic resize +
centre crop + torch normalise for images. One thread (upstream's workers=0)."""
import sys, time
import numpy as np, torch, sentencepiece as spm
from PIL import Image

n_text = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
n_img = int(sys.argv[2]) if len(sys.argv) > 2 else 200
sp = spm.SentencePieceProcessor(model_file="tests/fixtures/tokenizer/spm_large.model")
words = ["the", "model", "reads", "an", "image", "and", "answers", "questions", "about", "what", "it", "sees", "in",
         "a", "short", "clear", "sentence", "with", "colours", "shapes"]
x = 1
def nxt():
    global x
    x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return words[(x >> 16) % 20]
recs = []
for i in range(n_text):
    q = " ".join(nxt() for _ in range(60)) + " ?"
    a = " ".join(nxt() for _ in range(160)) + " ."
    recs.append((q, a))
H = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
t0 = time.perf_counter()
for q, a in recs:
    prompt = H + "\n\n### Instruction:\n" + q + "\n\n### Response:\n"
    ids = [1] + sp.encode(prompt + a + "### End.")[:511] + [2]
    n_mask = 1 + len(sp.encode(prompt))
    labels = [-100] * n_mask + ids[n_mask:]
print(f"py_records_s {n_text / (time.perf_counter() - t0):.1f}")
mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
t0 = time.perf_counter()
for i in range(n_img):
    im = Image.open("tests/fixtures/vision/chelsea.jpg").convert("RGB")
    w, h = im.size
    s = 224 / min(w, h)
    im = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BICUBIC)
    w, h = im.size
    l, t = (w - 224) // 2, (h - 224) // 2
    im = im.crop((l, t, l + 224, t + 224))
    px = (torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1) - mean) / std
print(f"py_images_s {n_img / (time.perf_counter() - t0):.1f}")
