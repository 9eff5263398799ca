#!/usr/bin/env python3
"""Reference for the instruction template (SPEC.md 2.3, 2.4, 2.8), written from upstream's definitions:
VQAPrompter/LMPrompter strings, the datasets' tokenize() (ids = tok(instruction + answer + "### End.", truncation,
max_length), EOS appended when not last and there is room, labels -100 over len(tok(instruction))),
multi-turn dialogues tokenized pair by pair (each with its own BOS, the header only on the first), the
collate's <image> masking, and the demo's PromptGenerator for the chat rendering (one string, one BOS).
Tokenization is tokenizer_ref.encode_added (the slow LlamaTokenizer's STRIP rule) on the committed
spm_large model. Writes tests/fixtures/template/cases.json. Run with /usr/bin/python3."""
import json
import os
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tokenizer_ref  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "template")
H = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


def prompt_of(msg, header):
    p = header or ""
    p += "\n\n### Image:\n<image>" * len(msg.get("images", []))
    p += "\n\n### Instruction:\n" + msg["content"]
    if msg.get("input"):
        p += "\n\n### Input:\n" + msg["input"]
    return p + "\n\n### Response:\n"


def build(sp, conv, style, max_len):
    tok = lambda s: tokenizer_ref.encode_added(sp, s, True)  # noqa: E731
    image_id = sp.get_piece_size() + 1
    header = conv.get("system", H)
    msgs = conv["messages"]
    if style == "train":
        text, ids, labels = "", [], []
        for k in range(0, len(msgs), 2):
            instruction = prompt_of(msgs[k], header if k == 0 else None)
            answer = msgs[k + 1]["content"] + "### End."  # VQADataset/DollyDataset.tokenize append it
            text += instruction + answer
            full = tok(instruction + answer)
            n_prompt = len(tok(instruction))
            if max_len:
                full, n_prompt = full[:max_len], min(n_prompt, max_len)
            lab = [-100] * n_prompt + full[n_prompt:]
            if full[-1] != 2 and (not max_len or len(full) < max_len):
                full, lab = full + [2], lab + [2]
            ids += full
            labels += lab
    else:
        text = header
        for m in msgs:
            text += prompt_of(m, None) if m["role"] == "user" else m["content"]
        ids = tok(text)
        labels = [-100] * len(ids)
    labels = [-100 if i == image_id else l for i, l in zip(ids, labels)]
    return {"text": text, "ids": ids, "labels": labels,
            "media_locations": [i for i, t in enumerate(ids) if t == image_id]}


U = lambda c, **k: dict(role="user", content=c, **k)  # noqa: E731
A = lambda c: dict(role="assistant", content=c)  # noqa: E731

CASES = [
    ("language, no input", {"messages": [U("Name three primary colours."), A("Red, yellow and blue.")]}, "train", 0),
    ("language, with input", {"messages": [U("Summarise the text.", input="The cat sat on the mat all day."),
                                           A("A cat rested on a mat.")]}, "train", 0),
    ("vision, single turn", {"messages": [U("What is in the image?", images=["a.png"]),
                                          A("A red circle on a white background.")]}, "train", 0),
    ("vision, multiple choice", {"messages": [U("What colour is the square?", images=["a.png"],
                                                input="red, green, blue"), A("green")]}, "train", 0),
    ("three turns, two images (train)", {"messages": [
        U("Describe the image.", images=["a.png"]), A("Two circles and a star."),
        U("How many circles are there?"), A("There are 2 circles."),
        U("And in this one?", images=["b.png"]), A("Three circles.")]}, "train", 0),
    ("three turns, two images (chat, reply pending)", {"messages": [
        U("Describe the image.", images=["a.png"]), A("Two circles and a star."),
        U("How many circles are there?"), A("There are 2 circles."),
        U("And in this one?", images=["b.png"])]}, "chat", 0),
    ("single turn with image (chat equals prompt_qa)", {"messages": [U("What is in the image?", images=["a.png"])]},
     "chat", 0),
    ("truncated at 70 tokens", {"messages": [U("Write a long story about a dog."),
                                             A("Once upon a time there was a dog who ran and ran and ran.")]},
     "train", 70),
    ("answer cut to nothing at 56", {"messages": [U("Write a long story about a cat."), A("It purred.")]},
     "train", 56),
    ("custom system, unicode", {"system": "Tu es un assistant serviable.", "messages": [
        U("Qu'est-ce que c'est ? 😀 café", images=["a.png"]), A("Un cercle rouge. 中文")]}, "train", 0),
    ("whitespace around the question", {"messages": [U("  spaced question  \n", images=["x.png"]),
                                                     A("\nanswer with newline\n")]}, "train", 0),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "tests", "fixtures", "tokenizer", "spm_large.model"))
    out = []
    for name, conv, style, max_len in CASES:
        c = {"name": name, "conversation": conv, "style": style, "max_turn_tokens": max_len}
        c.update(build(sp, conv, style, max_len))
        out.append(c)
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer": "tests/fixtures/tokenizer/spm_large.model", "cases": out}, f, ensure_ascii=False,
                  indent=1)
    print("%d template cases" % len(out))


if __name__ == "__main__":
    main()
