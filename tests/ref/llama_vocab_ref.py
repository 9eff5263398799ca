#!/usr/bin/env python3
"""Extracts the real LLaMA vocabulary and merges, published as data in the npm package
llama-tokenizer-js (MIT), into a Hugging Face style tokenizer.json fixture, together with the
package's known encodings (facts: input strings and their ids). Needs the package unpacked:
  cd /tmp && npm pack llama-tokenizer-js && tar xzf llama-tokenizer-js-*.tgz
then: /usr/bin/python3 tests/ref/llama_vocab_ref.py /tmp/package/llama-tokenizer.js"""
import ast
import base64
import json
import os
import re
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizer")


def main():
    src = open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ltjs/package/llama-tokenizer.js", encoding="utf-8").read()
    vocab_b64 = re.search(r'const llama_vocab_base64 = "([^"]+)"', src).group(1)
    merges_b64 = re.search(r'const llama_merges_binary = "([^"]+)"', src).group(1)
    vocab = base64.b64decode(vocab_b64).decode("utf-8").split("\n")
    raw = base64.b64decode(merges_b64)
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [vocab[ids[i]] + " " + vocab[ids[i + 1]] for i in range(0, len(ids), 2)]
    tok = {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": c, "special": True} for i, c in enumerate(["<unk>", "<s>", "</s>"])],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                          {"type": "Replace", "pattern": {"String": " "},
                                                           "content": "\u2581"}]},
        "pre_tokenizer": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                  "vocab": {v: i for i, v in enumerate(vocab)}, "merges": merges},
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "llama_tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
    cases = []
    for m in re.finditer(r'testCase\((".*?"|\'.*?\'),\s*\[([\d,\s]+)\]\)', src, re.S):
        text = ast.literal_eval(m.group(1))
        cases.append({"text": text, "ids": [int(x) for x in m.group(2).split(",") if x.strip()]})
    with open(os.path.join(OUT, "llama_cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)
    print(f"{len(vocab)} pieces, {len(merges)} merges, {len(cases)} known encodings")


if __name__ == "__main__":
    main()
