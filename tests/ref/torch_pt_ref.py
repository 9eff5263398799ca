#!/usr/bin/python3
"""Writes tests/fixtures/torch_pt/: small torch.save checkpoints (every dtype, views, shared storages,
nested dicts, Parameters, OrderedDicts, pickle protocols 2/4/5, a deflated re-zip, a fake mmengine Config),
broken and malicious files, expected.json with torch's values, and the fuzz seed corpus.

Run with Debian's /usr/bin/python3 (python3-torch). Values in expected.json are the exact numbers torch
holds (f16/bf16/f32 widened to double, ints as ints), so the C test compares for equality."""
import collections
import io
import json
import os
import shutil
import struct
import sys
import types
import zipfile

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "torch_pt")
OUT = os.path.normpath(OUT)
FIXED_TIME = (2023, 5, 1, 0, 0, 0)

DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}

expected = {"files": {}, "errors": {}}


def path(name):
    return os.path.join(OUT, name)


def flatten(obj, prefix, out, meta, depth=0):
    """Mirrors the C flattening: dict keys joined by '.', ints and list indices as decimals."""
    if isinstance(obj, torch.Tensor):
        out.append((prefix, obj))
        return
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))
    else:
        return
    for k, v in items:
        if not isinstance(k, (str, int)):
            continue
        name = f"{prefix}.{k}" if prefix else str(k)
        if depth == 0 and not isinstance(v, (torch.Tensor, dict, list, tuple)):
            if v is None or isinstance(v, (bool, int, float, str)):
                meta[name] = v
            elif isinstance(v, (set, frozenset)):
                meta[name] = {"kind": "set", "n": len(v)}
            elif isinstance(v, bytes):
                meta[name] = {"kind": "bytes", "hex": v.hex()}
            else:
                meta[name] = {"opaque": f"{type(v).__module__}.{type(v).__qualname__}"}
        flatten(v, name, out, meta, depth + 1)


def record(fname, obj, extra=None):
    """Stores what torch says about every tensor of obj under expected['files'][fname]."""
    tensors, meta = [], {}
    flatten(obj, "", tensors, meta)
    rows = []
    for name, t in tensors:
        vals = t.detach().contiguous().reshape(-1)
        if t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            values = vals.double().tolist()
        elif t.dtype == torch.bool:
            values = [int(x) for x in vals.tolist()]
        else:
            values = vals.tolist()
        rows.append({
            "name": name, "dtype": DTYPES[t.dtype], "shape": list(t.shape), "stride": list(t.stride()),
            "offset": t.storage_offset(), "requires_grad": bool(t.requires_grad),
            "is_param": isinstance(t, torch.nn.Parameter), "values": values,
        })
    entry = {"tensors": rows, "meta": meta}
    if extra:
        entry.update(extra)
    expected["files"][fname] = entry


def save(fname, obj, via_buffer=False, **kw):
    """torch.save to a path (top folder = file stem) or through a buffer (top folder 'archive')."""
    if via_buffer:
        buf = io.BytesIO()
        torch.save(obj, buf, **kw)
        with open(path(fname), "wb") as f:
            f.write(buf.getvalue())
    else:
        torch.save(obj, path(fname), **kw)
    # Round trip through torch itself so expected values are what torch.load gives back.
    loaded = torch.load(path(fname)) if kw.get("_use_new_zipfile_serialization", True) else obj
    return loaded


def rezip(src, dst, method=zipfile.ZIP_DEFLATED, drop=(), replace=None):
    """Copies a zip member by member (optionally deflating, dropping or replacing members)."""
    replace = replace or {}
    with zipfile.ZipFile(path(src)) as zin, zipfile.ZipFile(path(dst), "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = replace.get(info.filename, zin.read(info.filename))
            zi = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            zi.compress_type = method
            zout.writestr(zi, data)


def write_zip(dst, members):
    with zipfile.ZipFile(path(dst), "w") as z:
        for name, data in members:
            zi = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            zout_data = data
            z.writestr(zi, zout_data)


def write_zip64(dst, members):
    """A stored zip whose central entries put sizes and offsets in ZIP64 extra fields (0xffffffff in the
    32-bit fields), plus ZIP64 end records: the layout of a > 4 GB checkpoint, in a few hundred bytes."""
    out, central = bytearray(), bytearray()
    for name, data in members:
        nb, crc, off = name.encode(), zipfile.crc32(data) & 0xffffffff, len(out)
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 0, 0, 0, crc, 0xffffffff, 0xffffffff, len(nb),
                           len(local_extra)) + nb + local_extra + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 0, 0, 0, crc, 0xffffffff, 0xffffffff,
                               len(nb), len(extra), 0, 0, 0, 0, 0xffffffff) + nb + extra
    cd_off = len(out)
    out += central
    eocd64 = len(out)
    n = len(members)
    out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, n, n, len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064b50, 0, eocd64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0)
    with open(path(dst), "wb") as f:
        f.write(bytes(out))


# ---- a tiny pickle emitter for hand-made streams (protocol 2 opcodes) ----
def op_str(s):
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def op_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_int(i):
    return b"J" + struct.pack("<i", i)


def op_tuple(*parts):
    return b"(" + b"".join(parts) + b"t"


def storage_pid(cls, key, numel, module="torch"):
    return op_tuple(op_str("storage"), op_global(module, cls), op_str(key), op_str("cpu"), op_int(numel)) + b"Q"


def empty_odict():
    return op_global("collections", "OrderedDict") + b")R"


def main():
    torch.manual_seed(0)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "fuzz_corpus"))

    # 1. Every dtype, saved to a path (top folder "basic/").
    basic = {
        "f32": torch.randn(3, 4),
        "f16": (torch.randn(5) * 3).half(),
        "bf16": torch.randn(2, 3).bfloat16(),
        "f64": torch.randn(4, dtype=torch.float64),
        "i64": torch.tensor([0, -1, 2**40 + 3, -(2**62), 2**62 + 1]),
        "i32": torch.tensor([7, -2**31, 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-300, 12345], dtype=torch.int16),
        "i8": torch.tensor([-128, 5, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True]),
    }
    record("basic.pt", save("basic.pt", basic))

    # 2. Views: transposes, slices with storage offsets, strided steps, expand (stride 0), shared storages.
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    flat = base.view(24)
    bfb = torch.randn(3, 4).bfloat16()
    views = {
        "base": base,
        "t": base.t(),
        "slice": base[1:3, 2:5],
        "row": base[2],
        "step": base[:, ::2],
        "shared_tail": flat[5:9],
        "expand": torch.arange(3.0).expand(4, 3),
        "scalar": torch.tensor(7.5),
        "empty": torch.zeros(0, 3),
        "bf16_t": bfb.t(),
        "f16_slice": (torch.randn(5, 4) * 2).half()[1:4, 1:3],
        "i64_col": torch.arange(12).reshape(3, 4)[:, 1],
        "perm3": torch.randn(2, 3, 4).permute(2, 0, 1),
    }
    record("views.pt", save("views.pt", views, via_buffer=True))

    # 3. Nested checkpoint: model/optimizer state dicts and top-level scalars.
    sd = collections.OrderedDict()
    sd["module.perceiver.latents"] = torch.randn(4, 3)
    sd["module.lang_encoder.layers.0.attn_gate"] = torch.tensor([0.25])
    nested = {
        "epoch": 3,
        "name": "run1",
        "lr": 1e-4,
        "flag": True,
        "nothing": None,
        "model_state_dict": sd,
        "optimizer_state_dict": {
            "state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.randn(4, 3)}},
            "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "params": [0]}],
        },
    }
    record("nested.pt", save("nested.pt", nested))

    # 4. A module's state_dict (OrderedDict carrying _metadata through BUILD).
    torch.manual_seed(1)
    mod = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    record("module_sd.pt", save("module_sd.pt", mod.state_dict()))

    # 5. Parameters: plain, frozen, with an attribute (_rebuild_parameter_with_state), and a tensor with an
    # attribute (_rebuild_from_type_v2).
    p_attr = torch.nn.Parameter(torch.randn(3))
    p_attr.note = "tagged"
    t_attr = torch.randn(2, 2)
    t_attr.note = "also"
    params = {
        "p": torch.nn.Parameter(torch.randn(2, 3)),
        "q": torch.nn.Parameter(torch.ones(2), requires_grad=False),
        "p_attr": p_attr,
        "t_attr": t_attr,
    }
    record("param.pt", save("param.pt", params))

    # 6. Pickle protocols.
    proto_obj = {"w": torch.randn(2, 5), "b": torch.randn(5).half(), "n": 12, "s": "x" * 300,
                 "tags": {"a", "b"}, "raw": b"\x00\xffbytes"}
    for proto in (2, 4, 5):
        fname = f"proto{proto}.pt"
        record(fname, save(fname, proto_obj, pickle_protocol=proto))

    # 7. A deflated re-zip of basic.pt.
    rezip("basic.pt", "deflated.pt")
    expected["files"]["deflated.pt"] = dict(expected["files"]["basic.pt"])

    # 8. A Multimodal-GPT-like checkpoint whose tuning_config is an mmengine Config (faked here, so the
    # pickle names mmengine.config.config.Config / ConfigDict exactly as the real one does).
    mm = types.ModuleType("mmengine")
    mm_config = types.ModuleType("mmengine.config")
    mm_cc = types.ModuleType("mmengine.config.config")

    class ConfigDict(dict):  # addict-style: state is the dict itself
        def __getstate__(self):
            return self

        def __setstate__(self, state):
            self.update(state)

    class Config:
        def __init__(self, cfg, filename, text):
            self._cfg_dict = ConfigDict(cfg)
            self._filename = filename
            self._text = text

        def __getstate__(self):
            return (self._cfg_dict, self._filename, self._text, {}, True, {"lora_r"})

        def __setstate__(self, state):
            self._cfg_dict, self._filename, self._text = state[:3]

    for cls in (ConfigDict, Config):
        cls.__module__ = "mmengine.config.config"
        cls.__qualname__ = cls.__name__
        setattr(mm_cc, cls.__name__, cls)
    sys.modules.update({"mmengine": mm, "mmengine.config": mm_config, "mmengine.config.config": mm_cc})
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "to_q", "to_kv", "to_out", "ff.1", "ff.3"]
    cfg = Config({"lora_target_modules": targets, "lora_r": 8, "lora_alpha": 32, "lora_dropout": 0.05,
                  "vis": True, "unfrozen": [], "dataset": ConfigDict(type="llava")},
                 "configs/lora_config.py", "lora_r = 8\nlora_alpha = 32\n")
    lora_key = "module.lang_encoder.base_model.model.model.layers.0.decoder_layer.self_attn.q_proj"
    ckpt = {
        "epoch": 1,
        "model_state_dict": {lora_key + ".lora_A.default.weight": torch.randn(8, 16),
                             lora_key + ".lora_B.default.weight": torch.randn(16, 8)},
        "tuning_config": cfg,
    }
    lora_meta = {"lora_r": 8, "lora_alpha": 32, "lora_target_modules": targets}
    torch.save(ckpt, path("mmgpt_ckpt.pt"))
    record("mmgpt_ckpt.pt", ckpt, {"lora": lora_meta})
    torch.save(ckpt, path("mmgpt_ckpt_p4.pt"), pickle_protocol=4)
    record("mmgpt_ckpt_p4.pt", ckpt, {"lora": lora_meta})
    torch.save({"model_state_dict": {"x": cfg}}, path("opaque_elsewhere.pt"))
    expected["errors"]["mmgpt_ckpt.pt"] = "mmengine.config.config.Config"
    expected["errors"]["opaque_elsewhere.pt"] = "opaque object 'mmengine.config.config.Config' at 'model_state_dict.x'"

    # 9. Hand-made streams: _rebuild_tensor_v3 over an UntypedStorage (newer torch) and the storage of a
    # GPU save (torch.cuda.FloatStorage), read back as plain CPU data.
    v3 = (b"\x80\x02}(" + op_str("u") + op_global("torch._utils", "_rebuild_tensor_v3") +
          op_tuple(storage_pid("UntypedStorage", "0", 8), op_int(0), op_int(2) + b"\x85", op_int(1) + b"\x85",
                   b"\x89", empty_odict(), op_global("torch", "int32")) + b"R" +
          op_str("g") + op_global("torch._utils", "_rebuild_tensor_v2") +
          op_tuple(storage_pid("FloatStorage", "1", 3, module="torch.cuda"), op_int(1), op_int(2) + b"\x85",
                   op_int(1) + b"\x85", b"\x88", empty_odict()) + b"R" +
          op_str("ft") + op_global("torch._tensor", "_rebuild_from_type_v2") +
          op_tuple(op_global("torch._utils", "_rebuild_tensor_v2"), op_global("torch", "Tensor"),
                   op_tuple(storage_pid("FloatStorage", "1", 3), op_int(0), op_int(3) + b"\x85",
                            op_int(1) + b"\x85", b"\x89", empty_odict()),
                   b"}" + op_str("note") + op_str("x") + b"s") + b"R" +
          op_str("ps") + op_global("torch._utils", "_rebuild_parameter_with_state") +
          op_tuple(op_global("torch._utils", "_rebuild_tensor_v2") +
                   op_tuple(storage_pid("FloatStorage", "1", 3), op_int(0), op_int(3) + b"\x85",
                            op_int(1) + b"\x85", b"\x89", empty_odict()) + b"R",
                   b"\x88", empty_odict(), b"}" + op_str("note") + op_str("y") + b"s") + b"R" + b"u.")
    write_zip("handmade.pt", [("handmade/data.pkl", v3), ("handmade/byteorder", b"little"), ("handmade/version", b"3\n"),
                              ("handmade/data/0", struct.pack("<ii", 7, -9)),
                              ("handmade/data/1", struct.pack("<fff", 1.5, -2.25, 3.0))])
    with zipfile.ZipFile(path("handmade.pt")) as z:
        write_zip64("zip64.pt", [(i.filename.replace("handmade/", "zip64/"), z.read(i.filename))
                                 for i in z.infolist()])
    expected["files"]["handmade.pt"] = {"meta": {}, "tensors": [
        {"name": "u", "dtype": "I32", "shape": [2], "stride": [1], "offset": 0, "requires_grad": False,
         "is_param": False, "values": [7, -9]},
        {"name": "g", "dtype": "F32", "shape": [2], "stride": [1], "offset": 1, "requires_grad": True,
         "is_param": False, "values": [-2.25, 3.0]},
        {"name": "ft", "dtype": "F32", "shape": [3], "stride": [1], "offset": 0, "requires_grad": False,
         "is_param": False, "values": [1.5, -2.25, 3.0]},
        {"name": "ps", "dtype": "F32", "shape": [3], "stride": [1], "offset": 0, "requires_grad": True,
         "is_param": True, "values": [1.5, -2.25, 3.0]}]}

    expected["files"]["zip64.pt"] = expected["files"]["handmade.pt"]
    with zipfile.ZipFile(path("zip64.pt")) as z:  # Python's zipfile agrees on the ZIP64 layout
        assert z.read("zip64/data/1") == struct.pack("<fff", 1.5, -2.25, 3.0)

    # ---- broken and malicious files: each must fail with a message containing the given text ----
    def evil(fname, pkl, needle):
        write_zip(fname, [("archive/data.pkl", pkl), ("archive/version", b"3\n")])
        expected["errors"][fname] = needle

    evil("evil_os_system.pt", b"\x80\x02" + op_global("os", "system") + op_tuple(op_str("echo pwned")) + b"R.",
         "global 'os.system' at offset 2")
    evil("evil_eval.pt", b"\x80\x02" + op_global("__builtin__", "eval") + op_tuple(op_str("1+1")) + b"R.",
         "global 'builtins.eval'")
    evil("evil_getattr.pt", b"\x80\x04\x8c\x08builtins\x8c\x07getattr\x93.", "global 'builtins.getattr'")
    evil("evil_call_storage.pt", b"\x80\x02" + op_global("torch", "FloatStorage") + b")R.",
         "refusing to call 'torch.FloatStorage'")
    evil("oversized_str.pt", b"\x80\x02X\xf0\xff\xff\xff" + b"abc", "string length 4294967280")
    evil("bad_view.pt", b"\x80\x02}(" + op_str("v") + op_global("torch._utils", "_rebuild_tensor_v2") +
         op_tuple(storage_pid("FloatStorage", "0", 4), op_int(2), op_int(3) + b"\x85", op_int(1) + b"\x85",
                  b"\x89", empty_odict()) + b"Ru.", "missing")
    write_zip("bad_view2.pt", [("archive/data.pkl",
              b"\x80\x02}(" + op_str("v") + op_global("torch._utils", "_rebuild_tensor_v2") +
              op_tuple(storage_pid("FloatStorage", "0", 4), op_int(2), op_int(3) + b"\x85", op_int(1) + b"\x85",
                       b"\x89", empty_odict()) + b"Ru."),
              ("archive/data/0", b"\0" * 16)])
    expected["errors"]["bad_view2.pt"] = "tensor 'v' (offset 2, 1 dims) reaches past its 16-byte storage"

    blob = open(path("basic.pt"), "rb").read()
    with open(path("truncated.pt"), "wb") as f:
        f.write(blob[: len(blob) // 2])
    expected["errors"]["truncated.pt"] = "end-of-central-directory"
    # End records intact, central directory offset pointing past the end: in the ZIP64 end record that
    # torch always writes, and in the plain one of a Python-written zip.
    b = bytearray(blob)
    eocd64 = b.rfind(b"PK\x06\x06")
    b[eocd64 + 48:eocd64 + 56] = struct.pack("<Q", 0xfffffffffffffff0)
    open(path("cd_outside.pt"), "wb").write(bytes(b))
    expected["errors"]["cd_outside.pt"] = "lies outside the"
    b = bytearray(open(path("deflated.pt"), "rb").read())
    eocd = b.rfind(b"PK\x05\x06")
    b[eocd + 16:eocd + 20] = struct.pack("<I", 0xfffffff0)
    open(path("cd_outside32.pt"), "wb").write(bytes(b))
    expected["errors"]["cd_outside32.pt"] = "lies outside the"

    rezip("views.pt", "missing_data.pt", method=zipfile.ZIP_STORED, drop={"archive/data/0"})
    expected["errors"]["missing_data.pt"] = "storage member 'archive/data/0' named by the pickle is missing"

    # Oversized length field: the first central entry claims a 2 GB member.
    b = bytearray(blob)
    cd = b.find(b"PK\x01\x02")
    b[cd + 20:cd + 28] = struct.pack("<II", 0x7ffffff0, 0x7ffffff0)
    open(path("oversized_zip.pt"), "wb").write(bytes(b))
    expected["errors"]["oversized_zip.pt"] = "run past the end"

    # A deflated member claiming an impossible size (a would-be zip bomb).
    db = bytearray(open(path("deflated.pt"), "rb").read())
    cd = db.find(b"PK\x01\x02")
    db[cd + 24:cd + 28] = struct.pack("<I", 0x7ffffff0)
    open(path("bomb.pt"), "wb").write(bytes(db))
    expected["errors"]["bomb.pt"] = "impossible ratio"

    # Storage bytes shorter than the pickle says.
    rezip("basic.pt", "short_storage.pt", method=zipfile.ZIP_STORED, replace={"basic/data/0": b"\0" * 8})
    expected["errors"]["short_storage.pt"] = "holds 8 bytes but the pickle records 12 elements"

    # Two paths flatten to the same name.
    torch.save({"a.b": torch.ones(1), "a": {"b": torch.zeros(1)}}, path("dup_names.pt"))
    expected["errors"]["dup_names.pt"] = "tensor name 'a.b' appears twice"

    # Self-reference and a DAG with 2**28 paths: the flattening must stop, not loop or explode.
    cyc = {"w": torch.ones(1)}
    cyc["self"] = cyc
    torch.save(cyc, path("cyclic.pt"))
    expected["errors"]["cyclic.pt"] = "nesting deeper than 32 levels"
    dag = [torch.ones(1)]
    for _ in range(28):
        dag = [dag, dag]
    torch.save({"dag": dag}, path("dag_bomb.pt"))
    expected["errors"]["dag_bomb.pt"] = "too large to flatten"

    torch.save(basic, path("legacy.pt"), _use_new_zipfile_serialization=False)
    expected["errors"]["legacy.pt"] = "torch.save(torch.load(f), f2)"

    with open(path("not_torch.pt"), "wb") as f:
        f.write(b"hello, this is not a checkpoint\n")
    expected["errors"]["not_torch.pt"] = "not a PyTorch checkpoint"

    with open(path("expected.json"), "w") as f:
        json.dump(expected, f, indent=0, sort_keys=True)

    # ---- fuzz seeds: raw pickles and two small zips ----
    corpus = os.path.join(OUT, "fuzz_corpus")
    seeds = {
        "basic.pkl": ("basic.pt", "basic/data.pkl"),
        "views.pkl": ("views.pt", "archive/data.pkl"),
        "nested.pkl": ("nested.pt", "nested/data.pkl"),
        "param.pkl": ("param.pt", "param/data.pkl"),
        "proto4.pkl": ("proto4.pt", "proto4/data.pkl"),
        "proto5.pkl": ("proto5.pt", "proto5/data.pkl"),
        "mmgpt.pkl": ("mmgpt_ckpt.pt", "mmgpt_ckpt/data.pkl"),
        "mmgpt_p4.pkl": ("mmgpt_ckpt_p4.pt", "mmgpt_ckpt_p4/data.pkl"),
        "handmade.pkl": ("handmade.pt", "handmade/data.pkl"),
        "evil.pkl": ("evil_os_system.pt", "archive/data.pkl"),
    }
    for out, (zf, member) in seeds.items():
        with zipfile.ZipFile(path(zf)) as z:
            open(os.path.join(corpus, out), "wb").write(z.read(member))
    for zf in ("handmade.pt", "param.pt", "deflated.pt", "zip64.pt"):
        shutil.copy(path(zf), os.path.join(corpus, "zip_" + zf))

    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"torch_pt fixtures: {len(expected['files'])} checkpoints, {len(expected['errors'])} bad files, "
          f"{total} bytes in {OUT}")


if __name__ == "__main__":
    main()
