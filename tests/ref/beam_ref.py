#!/usr/bin/env python3
"""Reference for beam search: transformers 4.28's beam_search loop and BeamSearchScorer/BeamHypotheses
(num_return_sequences 1, length_penalty 1.0, early_stopping False), restated with torch on a toy
model whose next-token logits are a fixed random table indexed by (last token, length). Writes the
tables, prompts and expected outputs to tests/fixtures/chat/beam_cases.json. /usr/bin/python3."""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "chat")


class Hyps:
    def __init__(self, num_beams):
        self.num_beams, self.beams, self.worst_score = num_beams, [], 1e9

    def add(self, hyp, sum_logprobs):
        score = sum_logprobs / (hyp.shape[-1] ** 1.0)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, hyp))
            if len(self.beams) > self.num_beams:
                s = sorted([(s, i) for i, (s, _) in enumerate(self.beams)])
                del self.beams[s[0][1]]
                self.worst_score = s[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs, cur_len):
        if len(self.beams) < self.num_beams:
            return False
        return self.worst_score >= best_sum_logprobs / cur_len ** 1.0


def toy_logits(table, seq):
    R = table.shape[0]
    return table[(int(seq[-1]) * 7 + len(seq)) % R]


def beam_search(table, prompt, num_beams, max_new, eos, banned):
    V = table.shape[1]
    input_ids = torch.tensor([prompt] * num_beams)
    beam_scores = torch.zeros(num_beams)
    beam_scores[1:] = -1e9
    hyps, done = Hyps(num_beams), False
    max_length = len(prompt) + max_new
    while True:
        cur_len = input_ids.shape[-1]
        logits = torch.stack([toy_logits(table, s) for s in input_ids])
        logits[:, banned] = -float("inf")
        scores = torch.log_softmax(logits, dim=-1) + beam_scores[:, None]
        scores = scores.view(1, num_beams * V)
        next_scores, next_tokens = torch.topk(scores, 2 * num_beams, dim=1, largest=True, sorted=True)
        next_indices = torch.div(next_tokens, V, rounding_mode="floor")
        next_tokens = next_tokens % V
        nb_scores, nb_tokens, nb_idx = [], [], []
        for rank, (tok, sc, idx) in enumerate(zip(next_tokens[0], next_scores[0], next_indices[0])):
            if int(tok) == eos:
                if rank >= num_beams:
                    continue
                hyps.add(input_ids[idx].clone(), float(sc))
            else:
                nb_scores.append(float(sc))
                nb_tokens.append(int(tok))
                nb_idx.append(int(idx))
            if len(nb_scores) == num_beams:
                break
        done = done or hyps.is_done(float(next_scores[0].max()), cur_len)
        beam_scores = torch.tensor(nb_scores)
        input_ids = torch.cat([input_ids[nb_idx, :], torch.tensor(nb_tokens)[:, None]], dim=-1)
        if done or input_ids.shape[-1] >= max_length:
            break
    if not done:
        for b in range(num_beams):
            hyps.add(input_ids[b], float(beam_scores[b]))
    best = sorted(hyps.beams, key=lambda x: x[0]).pop()[1].tolist()
    out = best[len(prompt):]
    if len(best) < max_length:
        out.append(eos)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for seed in range(12):
        g = torch.Generator().manual_seed(seed)
        V, R = 9 + seed % 5, 13
        table = torch.randn(R, V, generator=g, dtype=torch.float64).float() * (1.0 + seed % 3)
        eos = 2
        table[:, eos] += 0.8 * (seed % 4)  # some cases stop early, some run to the limit
        prompt = [1, 3 + seed % 4, 4]
        num_beams = 2 + seed % 3
        max_new = 4 + seed % 7
        banned = [V - 1]
        out = beam_search(table, prompt, num_beams, max_new, eos, banned)
        cases.append({"vocab": V, "rows": R, "table": table.flatten().tolist(), "prompt": prompt, "eos": eos,
                      "num_beams": num_beams, "max_new_tokens": max_new, "banned": banned, "expected": out})
    with open(os.path.join(OUT, "beam_cases.json"), "w") as f:
        json.dump(cases, f)
    print("%d beam-search cases" % len(cases))


if __name__ == "__main__":
    main()
