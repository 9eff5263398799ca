#!/usr/bin/env python3
"""Reference for mmgpt's block quantization (src/base/quant.c), written independently in numpy from the
GGUF block layouts (ggml's Q8_0, Q4_0, Q4_K, Q6_K) and mmgpt's documented quantizer rules (scale choices
are ours: the format only fixes how blocks decode). Everything is float32 arithmetic with np.rint
(round half to even), as the C code, so every byte must agree.

Writes tests/fixtures/quant/quant.safetensors: "x" [rows, n] f32 inputs (random rows plus corner
cases), and per type T: "T.blocks" [rows, bytes] u8 as quantized here, "T.y" [rows, n] f32 as those
blocks decode."""
import json
import os
import struct

import numpy as np

F = np.float32
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "quant", "quant.safetensors")


def half(v):
    """A scale as stored (f16 bits, little-endian) and as used (widened back to f32)."""
    h = np.float16(F(v))
    return h.tobytes(), F(h)


def rint(v):
    return int(np.rint(F(v)))


def clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def signed_absmax(x):
    return F(x[int(np.argmax(np.abs(x)))]) if len(x) else F(0)


def inv(d):
    return F(F(1) / d) if d != 0 else F(0)


def q8_0(x):
    out = bytearray()
    for b in range(0, len(x), 32):
        v = x[b:b + 32]
        hb, d = half(F(abs(signed_absmax(v))) / F(127))
        i = inv(d)
        out += hb + bytes(np.array([clamp(rint(F(e) * i), -127, 127) for e in v], dtype=np.int8).tobytes())
    return bytes(out)


def q4_0(x):
    out = bytearray()
    for b in range(0, len(x), 32):
        v = x[b:b + 32]
        hb, d = half(signed_absmax(v) / F(-8))
        i = inv(d)
        q = [clamp(rint(F(e) * i) + 8, 0, 15) for e in v]
        out += hb + bytes(q[j] | (q[j + 16] << 4) for j in range(16))
    return bytes(out)


def fit_affine(v, lo, iscale):
    """Least-squares x ~ a*l + b (b <= 0) over codes l drawn with step 1/iscale; (err, a, b) or None."""
    n = len(v)
    l = [clamp(rint(F(F(e) - lo) * iscale), 0, 15) for e in v]
    sl = sx = sll = slx = F(0)
    for li, e in zip(l, v):
        sl = F(sl + F(li))
        sx = F(sx + F(e))
        sll = F(sll + F(F(li) * F(li)))
        slx = F(slx + F(F(li) * F(e)))
    det = F(F(F(n) * sll) - F(sl * sl))
    if not det > 0:
        return None
    a = F(F(F(F(n) * slx) - F(sl * sx)) / det)
    b = F(F(sx - F(a * sl)) / F(n))
    if b > 0:
        b, a = F(0), F(slx / sll)
    if not a > 0:
        return None
    err = F(0)
    for li, e in zip(l, v):
        d = F(F(F(a * F(li)) + b) - F(e))
        err = F(err + F(d * d))
    return err, a, b


def q4_k(x):
    out = bytearray()
    for b in range(0, len(x), 256):
        v = x[b:b + 256]
        scale, mn = [], []
        for j in range(8):
            s = v[32 * j:32 * j + 32]
            lo, hi = F(s.min()), F(s.max())
            if lo > 0:
                lo = F(0)
            sc, m = F(F(hi - lo) / F(15)), F(-lo)
            if hi > lo:
                best = F(0)
                for e in s:
                    q = F(np.rint(F(F(F(e) - lo) / sc)))
                    d = F(F(F(sc * q) + lo) - F(e))
                    best = F(best + F(d * d))
                for k in range(21):
                    r = fit_affine(s, lo, F(F(F(14) + F(F(0.1) * F(k))) / F(hi - lo)))
                    if r is not None and r[0] < best:
                        best, sc, m = r[0], r[1], F(-r[2])
            scale.append(sc)
            mn.append(m)
        max_scale = max([F(0)] + scale)
        max_min = max([F(0)] + mn)
        iS = F(63) / max_scale if max_scale > 0 else F(0)
        iM = F(63) / max_min if max_min > 0 else F(0)
        ls = [clamp(rint(iS * s), 0, 63) for s in scale]
        lm = [clamp(rint(iM * m), 0, 63) for m in mn]
        hd, d = half(max_scale / F(63))
        hm, dmin = half(max_min / F(63))
        sc = [0] * 12
        for j in range(4):
            sc[j] = ls[j]
            sc[j + 4] = lm[j]
        for j in range(4, 8):
            sc[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
            sc[j - 4] |= (ls[j] >> 4) << 6
            sc[j] |= (lm[j] >> 4) << 6
        q = []
        for j in range(8):
            dj, mj = F(d * F(ls[j])), F(dmin * F(lm[j]))
            for e in v[32 * j:32 * j + 32]:
                q.append(clamp(rint(F(F(e) + mj) / dj), 0, 15) if dj != 0 else 0)
        qs = [q[64 * c + l] | (q[64 * c + 32 + l] << 4) for c in range(4) for l in range(32)]
        out += hd + hm + bytes(sc) + bytes(qs)
    return bytes(out)


def q6_k(x):
    out = bytearray()
    for b in range(0, len(x), 256):
        v = x[b:b + 256]
        s = [signed_absmax(v[16 * j:16 * j + 16]) / F(-32) for j in range(16)]
        max_s = F(0)
        for e in s:
            if abs(e) > abs(max_s):
                max_s = F(e)
        iS = F(-128) / max_s if max_s != 0 else F(0)
        hd, d = half(F(F(1) / iS) if max_s != 0 else F(0))
        scales, q = [], []
        for j in range(16):
            scj = clamp(rint(iS * s[j]), -128, 127)
            scales.append(scj)
            dj = F(d * F(scj))
            for e in v[16 * j:16 * j + 16]:
                q.append(clamp(rint(F(e) / dj), -32, 31) + 32 if dj != 0 else 32)
        ql, qh = [0] * 128, [0] * 64
        for h in range(2):
            for l in range(32):
                q1, q2, q3, q4 = (q[128 * h + l + 32 * k] for k in range(4))
                ql[64 * h + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
                ql[64 * h + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
                qh[32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
        out += bytes(ql) + bytes(qh) + np.array(scales, dtype=np.int8).tobytes() + hd
    return bytes(out)


def f16(b):
    return F(np.frombuffer(b, dtype=np.float16)[0])


def dq8_0(blk, n):
    y = []
    for o in range(0, len(blk), 34):
        d = f16(blk[o:o + 2])
        y += [F(d * F(q)) for q in np.frombuffer(blk[o + 2:o + 34], dtype=np.int8)]
    return y


def dq4_0(blk, n):
    y = []
    for o in range(0, len(blk), 18):
        d = f16(blk[o:o + 2])
        qs = blk[o + 2:o + 18]
        y += [F(d * F((c & 0xF) - 8)) for c in qs] + [F(d * F((c >> 4) - 8)) for c in qs]
    return y


def dq4_k(blk, n):
    y = []
    for o in range(0, len(blk), 144):
        d, dmin = f16(blk[o:o + 2]), f16(blk[o + 2:o + 4])
        sc = blk[o + 4:o + 16]
        qs = blk[o + 16:o + 144]

        def sm(j):
            if j < 4:
                return sc[j] & 63, sc[j + 4] & 63
            return (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)
        for c in range(4):
            s0, m0 = sm(2 * c)
            s1, m1 = sm(2 * c + 1)
            d0, d1, n0, n1 = F(d * F(s0)), F(d * F(s1)), F(dmin * F(m0)), F(dmin * F(m1))
            y += [F(F(d0 * F(qs[32 * c + l] & 0xF)) - n0) for l in range(32)]
            y += [F(F(d1 * F(qs[32 * c + l] >> 4)) - n1) for l in range(32)]
    return y


def dq6_k(blk, n):
    y = []
    for o in range(0, len(blk), 210):
        ql, qh = blk[o:o + 128], blk[o + 128:o + 192]
        sc = np.frombuffer(blk[o + 192:o + 208], dtype=np.int8)
        d = f16(blk[o + 208:o + 210])
        out = [F(0)] * 256
        for h in range(2):
            for l in range(32):
                a, c, hb = ql[64 * h + l], ql[64 * h + l + 32], qh[32 * h + l]
                qs = [(a & 0xF) | ((hb & 3) << 4), (c & 0xF) | (((hb >> 2) & 3) << 4),
                      (a >> 4) | (((hb >> 4) & 3) << 4), (c >> 4) | (((hb >> 6) & 3) << 4)]
                for k in range(4):
                    out[128 * h + l + 32 * k] = F(F(d * F(sc[8 * h + l // 16 + 2 * k])) * F(qs[k] - 32))
        y += out
    return y


TYPES = {"Q8_0": (q8_0, dq8_0), "Q4_0": (q4_0, dq4_0), "Q4_K": (q4_k, dq4_k), "Q6_K": (q6_k, dq6_k)}


def rows(n):
    rng = np.random.default_rng(20261201)
    r = [rng.standard_normal(n).astype(F) * F(0.05),                  # weight-like
         (rng.standard_normal(n) * np.exp(rng.standard_normal(n))).astype(F),  # heavy tails
         np.zeros(n, F),                                               # all zero: scales 0
         np.full(n, F(0.3)),                                           # constant positive
         -np.abs(rng.standard_normal(n)).astype(F),                    # all negative
         np.abs(rng.standard_normal(n)).astype(F) + F(2)]              # all positive, offset
    x = rng.standard_normal(n).astype(F) * F(1e-3)
    x[7] = F(40)                                                       # one outlier
    r.append(x)
    y = rng.uniform(-1, 1, n).astype(F) * F(3e4)                       # near the f16 range
    r.append(y)
    return np.stack(r)


def write(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        dt = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}[t.dtype]
        data = np.ascontiguousarray(t).tobytes()
        header[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    n = 512
    x = rows(n)
    out = {"x": x}
    for name, (quant, dequant) in TYPES.items():
        blocks = [quant(r) for r in x]
        out[name + ".blocks"] = np.frombuffer(b"".join(blocks), dtype=np.uint8).reshape(len(x), -1)
        out[name + ".y"] = np.array([dequant(b, n) for b in blocks], dtype=F)
        err = np.abs(out[name + ".y"][0] - x[0]).max()
        print(f"{name}: {out[name + '.blocks'].shape[1]} bytes a row of {n}, max error on row 0 {err:.3g}")
    write(OUT, out)
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
