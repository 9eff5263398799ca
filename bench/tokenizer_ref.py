#!/usr/bin/env python3
"""python3-sentencepiece on the held texts of a case file, encoded one text per call with BOS (as the C
bench does), repeated for at least min_s seconds. Prints torch-style key/value lines for bench/tokenizer.sh."""
import json, sys, time
import sentencepiece as spm

model = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tokenizer/spm_large.model"
cases = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/tokenizer/spm_large_cases.json"
min_s = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
sp = spm.SentencePieceProcessor(model_file=model)
texts = [c["text"] for c in json.load(open(cases, encoding="utf-8"))["held"]]
nbytes = sum(len(t.encode("utf-8")) for t in texts)
tokens = total = 0
t0 = time.perf_counter()
while True:
    for t in texts:
        tokens += 1 + len(sp.encode(t))
    total += nbytes
    t1 = time.perf_counter()
    if t1 - t0 >= min_s:
        break
print(f"py_mb_s {total / (t1 - t0) / 1e6:.3f}")
print(f"py_tokens_s {tokens / (t1 - t0):.0f}")
