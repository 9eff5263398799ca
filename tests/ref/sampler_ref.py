#!/usr/bin/env python3
"""Reference for the sampler: Hugging Face's logits processors and warpers of the training era
(RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper),
re-stated with torch ops from their definitions, applied to random logits. Writes the inputs and
the warped scores (-inf where filtered) to tests/fixtures/sampler/cases.json."""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "sampler")
torch.manual_seed(3)


def warp(scores, history, penalty, temperature, top_k, top_p):
    s = scores.clone()[None]
    if penalty != 1.0 and history:
        ids = torch.tensor([history])
        sc = torch.gather(s, 1, ids)
        sc = torch.where(sc < 0, sc * penalty, sc / penalty)
        s.scatter_(1, ids, sc)
    if temperature != 1.0:
        s = s / temperature
    if top_k > 0:
        k = min(top_k, s.size(-1))
        remove = s < torch.topk(s, k)[0][..., -1, None]
        s = s.masked_fill(remove, -float("inf"))
    if top_p < 1.0:
        sl, si = torch.sort(s, descending=False)
        cp = sl.softmax(dim=-1).cumsum(dim=-1)
        rm = cp <= (1 - top_p)
        rm[..., -1:] = 0
        remove = rm.scatter(1, si, rm)
        s = s.masked_fill(remove, -float("inf"))
    return s[0]


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for i, (pen, temp, k, p) in enumerate([(1.0, 1.0, 20, 1.0), (1.3, 0.7, 0, 0.9), (1.0, 1.0, 5, 0.5),
                                           (1.2, 1.5, 50, 0.95), (1.0, 0.3, 0, 0.2), (1.0, 1.0, 0, 1.0)]):
        V = 97 + 13 * i
        logits = torch.randn(V, dtype=torch.float64) * (1 + i)
        history = torch.randint(0, V, (12,)).tolist()
        out = warp(logits, history, pen, temp, k, p)
        cases.append({"logits": logits.tolist(), "history": history, "penalty": pen, "temperature": temp,
                      "top_k": k, "top_p": p,
                      "warped": [x if x != -float("inf") else None for x in out.tolist()]})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main()
