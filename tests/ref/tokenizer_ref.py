#!/usr/bin/env python3
"""Reference for the tokenizer: trains small SentencePiece BPE models with LLaMA's options on a mixed
corpus generated here (English, code, CJK, emoji, accented text, runs of spaces/newlines/tabs, control
characters, digits) with Debian's spm_train, and writes, for a held corpus of 2,000+ texts never seen in
training, the ids python3-sentencepiece gives (with BOS) and its decoding. Also the expected ids of texts
holding OpenFlamingo's added tokens under both split rules (SPEC.md 1.6), composed from sp.encode on
chunks exactly as the slow LlamaTokenizer of transformers < 4.34 does:
  - the text is split on the special tokens (<s>, </s>, <unk> and the added <|endofchunk|>, <image>,
    <PAD>), leftmost-longest;
  - around the added tokens (added as plain strings) the left chunk is rstrip()-ed and the right chunk
    lstrip()-ed; LLaMA's own <s>/</s>/<unk> are AddedToken(lstrip=False, rstrip=False): no strip;
  - each non-empty chunk is encoded separately (so each gets the dummy-prefix space); BOS once.
  The KEEP rule (newer transformers) splits the same way without stripping.
Run with /usr/bin/python3 (python3-sentencepiece; spm_train from the `sentencepiece` package)."""
import json
import os
import random
import re
import subprocess
import tempfile

import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

WORDS = ("the of and to in is was for that with as on by at from his her this which or an be are were had "
         "image picture photo shows a man woman dog cat red blue green yellow square circle triangle star "
         "left right top bottom center how many what colour where does text say describe detail response "
         "instruction input below task write appropriately completes request background small large "
         "running jumping table chair window street car bus train tree house mountain river sky cloud "
         "Multimodal Flamingo LLaMA vision language model token tokenizer encoder decoder attention "
         "don't isn't it's we'll they're I'm you've").split()
CODE = ["def f(x):\n    return x * 2", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
        "if x == None: raise ValueError('bad')", "#include <stdio.h>", "let v: Vec<u8> = vec![1, 2, 3];",
        "SELECT id, name FROM users WHERE age > 30;", "console.log(`value=${v}`);", "x = {'a': [1, 2], 'b': None}",
        "    \tindented\t\ttabs", "a=b+c*d/e-f%g", "<div class=\"x\">&amp;</div>", "path/to/file_name.txt"]
ACCENTED = "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœßÀÉÎÖÜÇ ĳŁłŚśŹźŻżĞğİıŞş ΑΒΓαβγ Привет мир Ελληνικά"
CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么"
JAPANESE = "これはテストですカタカナひらがな漢字日本語"
KOREAN = "안녕하세요한국어텍스트"
EMOJI = ["😀", "🐱", "🚀", "❤️", "👍🏽", "🇫🇷", "👨‍👩‍👧", "🎉", "✨", "🌍"]
CONTROL = ["\x01", "\x07", "\x1b", "\x7f", "\u200b", "\u00a0", "\u2028", "\ufeff", "\x0c", "\r"]


def sentence(r, n=None):
    n = n or r.randint(3, 14)
    w = [r.choice(WORDS) for _ in range(n)]
    if r.random() < 0.5:
        w[0] = w[0].capitalize()
    s = " ".join(w)
    return s + r.choice([".", "?", "!", "", ",", ":"])


def line(r):
    k = r.random()
    if k < 0.30:
        return sentence(r)
    if k < 0.40:
        return r.choice(CODE)
    if k < 0.47:
        return "".join(r.choice(CJK) for _ in range(r.randint(2, 20)))
    if k < 0.50:
        return "".join(r.choice(JAPANESE + KOREAN) for _ in range(r.randint(2, 12)))
    if k < 0.57:
        return " ".join("".join(r.choice(ACCENTED.replace(" ", "")) for _ in range(r.randint(2, 8)))
                        for _ in range(r.randint(1, 5)))
    if k < 0.63:
        return sentence(r) + " " + "".join(r.choice(EMOJI) for _ in range(r.randint(1, 4)))
    if k < 0.70:  # runs of whitespace, leading and trailing too
        ws = ["  ", "   ", "\n", "\n\n", "\t", " \n ", "    "]
        return r.choice(["", " ", "  "]) + r.choice(ws).join(sentence(r, 3) for _ in range(r.randint(2, 4))) + \
            r.choice(["", " ", "\n"])
    if k < 0.76:  # digits (split_digits) and numbers in text
        return "%s %d %s %.3f %s" % (sentence(r, 3), r.randint(0, 10 ** r.randint(1, 9)), r.choice(WORDS),
                                     r.random() * 1000, "".join(r.choice("0123456789") for _ in range(r.randint(1, 12))))
    if k < 0.80:
        return sentence(r, 4) + r.choice(CONTROL) + sentence(r, 3)
    if k < 0.84:  # rare characters: byte fallback
        return "".join(chr(r.randint(0x3400, 0x4DBF)) for _ in range(r.randint(1, 5))) + " " + \
            "".join(chr(r.randint(0x1D400, 0x1D7FF)) for _ in range(r.randint(1, 3)))
    if k < 0.88:
        return "### Instruction:\n" + sentence(r) + "\n\n### Response:\n" + sentence(r)
    if k < 0.92:
        return sentence(r).upper()
    if k < 0.95:
        return r.choice(WORDS) * r.randint(2, 6)  # repeated merges
    return "".join(r.choice(ACCENTED + CJK + "".join(EMOJI) + " \n\t.,!?") for _ in range(r.randint(1, 30)))


def train(corpus_path, prefix, vocab, coverage):
    subprocess.run(["spm_train", "--input=" + corpus_path, "--model_prefix=" + prefix, "--vocab_size=%d" % vocab,
                    "--model_type=bpe", "--byte_fallback=true", "--split_digits=true", "--add_dummy_prefix=true",
                    "--remove_extra_whitespaces=false", "--normalization_rule_name=identity",
                    "--allow_whitespace_only_pieces=true", "--character_coverage=%g" % coverage, "--unk_id=0", "--bos_id=1",
                    "--eos_id=2", "--pad_id=-1", "--max_sentence_length=100000", "--split_by_whitespace=true",
                    "--minloglevel=2", "--num_threads=2", "--input_sentence_size=0",
                    "--train_extremely_large_corpus=false"],
                   check=True, stdout=subprocess.DEVNULL)
    os.remove(prefix + ".vocab")


SPECIAL_RE = re.compile(r"(<\|endofchunk\|>|<image>|<PAD>|<s>|</s>|<unk>)")


def encode_added(sp, text, strip):
    """The slow LlamaTokenizer's tokenize() + convert_tokens_to_ids, with BOS, for a vocabulary of n
    SentencePiece pieces followed by <|endofchunk|>=n, <image>=n+1, <PAD>=n+2."""
    n = sp.get_piece_size()
    ids_of = {"<|endofchunk|>": n, "<image>": n + 1, "<PAD>": n + 2, "<s>": 1, "</s>": 2, "<unk>": 0}
    strips = {"<|endofchunk|>", "<image>", "<PAD>"}
    parts = SPECIAL_RE.split(text)  # chunks at even indices, tokens at odd
    if strip:
        for i in range(1, len(parts), 2):
            if parts[i] in strips:
                parts[i - 1] = parts[i - 1].rstrip()
                parts[i + 1] = parts[i + 1].lstrip()
    out = [1]
    for i, p in enumerate(parts):
        if i % 2:
            out.append(ids_of[p])
        elif p:
            out += sp.encode(p)
    return out


ADDED_TEXTS = [
    "Below is an instruction.\n\n### Image:\n<image>\n\n### Instruction:\nWhat is this?\n\n### Response:\n",
    "<image>", " <image> ", "a<image>b", "a <image> b", "a  <image>\n\nb", "<image><image>", "<image> <image> x",
    "text <|endofchunk|> more", "<|endofchunk|><image>caption<|endofchunk|>", "x <PAD> y", "<PAD>",
    "hello <s> world", "a</s>b", " </s> ", "<unk> is unknown", "<s><image></s>", "<ima ge> <image", "<<image>>",
    "\n<image>\n", "\t<image>\t", "caf\u00e9 <image> \u00a0na\u00efve", "\u3000<image>\u3000\u4e2d\u6587",
    "emoji 😀 <image> 🚀", "", " ", "###<image>###",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    r = random.Random(20261125)
    train_lines = [line(r) for _ in range(6000)]
    held = []
    seen = set(train_lines)
    while len(held) < 2200:
        t = line(r)
        if t not in seen:
            held.append(t)
            seen.add(t)
    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            # spm_train reads lines: newlines inside a text become separate training sentences.
            for t in train_lines:
                f.write(t.replace("\r", " ") + "\n")
        for name, vocab, cov in (("spm_small", 700, 0.98), ("spm_large", 3000, 0.9995)):
            train(corpus, os.path.join(OUT, name), vocab, cov)
    for name in ("spm_small", "spm_large"):
        sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, name + ".model"))
        cases = []
        for t in held:
            ids = [1] + sp.encode(t)
            cases.append({"text": t, "ids": ids, "decoded": sp.decode(ids[1:])})
        added = []
        for t in ADDED_TEXTS:
            added.append({"text": t, "strip": encode_added(sp, t, True), "keep": encode_added(sp, t, False)})
        with open(os.path.join(OUT, name + "_cases.json"), "w", encoding="utf-8") as f:
            json.dump({"model": name + ".model", "vocab": sp.get_piece_size(), "held": cases, "added": added}, f,
                      ensure_ascii=False, separators=(",", ":"))
        print("%s: %d pieces, %d held texts, %d added-token cases" % (name, sp.get_piece_size(), len(cases),
                                                                       len(added)))


if __name__ == "__main__":
    main()
