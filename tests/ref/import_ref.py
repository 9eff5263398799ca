#!/usr/bin/python3
"""Writes tests/fixtures/import/: a tiny OpenFlamingo + Multimodal-GPT model saved in each upstream
layout exactly as upstream saves it, and the logits the reference computes for it.

- llama_st/: a Hugging Face LLaMA directory (config.json, tokenizer.model, two safetensors shards with
  model.safetensors.index.json); llama_bin/: the same as pytorch_model-0000k-of-00002.bin shards (torch.save,
  with the rotary inv_freq buffers old HF files carry) and pytorch_model.bin.index.json.
- clip_jit.pt: a TorchScript archive, as OpenAI's own ViT-L-14.pt (refused with a hint).
- clip.pt: an open_clip state dict (visual.* plus a text tower and visual.proj, all unused);
  clip_hf.safetensors: the same tower in Hugging Face CLIPVisionModel names (q/k/v split, fc1/fc2, ...).
- checkpoint.pt: OpenFlamingo's trainable set as its training code saves it (perceiver, gated
  cross-attention blocks, embed_tokens with the 3 added rows); checkpoint_wrapped.pt: the same under
  "model_state_dict" with "module." prefixes and the gated_cross_attn_layers alias.
- lora.pt: Multimodal-GPT's LoRA file ({"model_state_dict": {"module.lang_encoder.base_model.model...
  .lora_A.default.weight": ...}, "tuning_config": <mmengine Config>}) with r=4 (alpha 8, not stored in
  the tensors: the test passes --lora-alpha 8).
- expected.safetensors: logits of one sequence with two images, without and with the adapters.
Reuses flamingo_ref.py's independent model (float64). Run with Debian's /usr/bin/python3."""
import collections
import json
import os
import shutil
import struct
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flamingo_ref as ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "import"))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
torch.manual_seed(4321)

# Sizes the importer infers: open_clip's 64-wide heads, OpenFlamingo's dim_head 64.
CFG = {
    "vision": {"image_size": 28, "patch_size": 7, "width": 64, "layers": 2, "heads": 1, "mlp_dim": 128, "eps": 1e-5,
               "ln_post": False},
    "perceiver": {"depth": 2, "heads": 1, "dim_head": 64, "num_latents": 5, "ff_mult": 2, "max_num_media": 3,
                  "max_num_frames": 1, "eps": 1e-5},
    "decoder": {"dim": 64, "layers": 4, "heads": 2, "ffn_dim": 96, "vocab_size": 503, "max_seq_len": 64,
                "rope_theta": 10000.0, "norm_eps": 1e-6},
    "cross_attn": {"every_n_layers": 2, "heads": 1, "dim_head": 64, "ff_mult": 2, "eps": 1e-5, "media_rule": "next"},
    "tokens": {"bos": 1, "eos": 2, "pad": 502, "media": 501, "eoc": 500},
    "lora": {"r": 4, "alpha": 8.0, "dropout": 0.0, "scope": ["lang_encoder"],
             "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "to_q", "to_kv", "to_out", "ff.1", "ff.3"]},
}
V, BASE_V = 503, 500


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def save_st(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        dt = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype]
        data = t.contiguous().view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[k] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def fake_mmengine():
    mm, mc, mcc = (types.ModuleType(n) for n in ("mmengine", "mmengine.config", "mmengine.config.config"))

    class ConfigDict(dict):
        def __getstate__(self):
            return self

        def __setstate__(self, state):
            self.update(state)

    class Config:
        def __init__(self, cfg):
            self._cfg_dict = ConfigDict(cfg)

        def __getstate__(self):
            return (self._cfg_dict, "configs/lora_config.py", "", {}, True, set())

    for cls in (ConfigDict, Config):
        cls.__module__ = "mmengine.config.config"
        cls.__qualname__ = cls.__name__
        setattr(mcc, cls.__name__, cls)
    sys.modules.update({"mmengine": mm, "mmengine.config": mc, "mmengine.config.config": mcc})
    return Config


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    w = ref.make_weights(CFG)  # float64, upstream OpenFlamingo names, LoRA on the targets (B random)
    w = {k: v.to(torch.float32).to(torch.float64) for k, v in w.items()}  # what f32 files can hold
    lora = {k: v for k, v in w.items() if ".lora_" in k}
    base = {k: v for k, v in w.items() if ".lora_" not in k}

    # LLaMA (Hugging Face names), two shards.
    llama = {}
    for k, v in base.items():
        if k.startswith("lang_encoder.") and "gated_cross_attn_layer" not in k:
            llama[k[len("lang_encoder."):].replace(".decoder_layer.", ".")] = f32(v)
    llama["model.embed_tokens.weight"] = llama["model.embed_tokens.weight"][:BASE_V].clone()  # no added rows
    hf_cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
              "num_hidden_layers": 4, "num_attention_heads": 2, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
              "vocab_size": BASE_V, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "hidden_act": "silu",
              "tie_word_embeddings": False, "torch_dtype": "float32"}
    names = sorted(llama)
    halves = [names[: len(names) // 2], names[len(names) // 2:]]
    for d in ("llama_st", "llama_bin"):
        os.makedirs(os.path.join(OUT, d))
        with open(os.path.join(OUT, d, "config.json"), "w") as f:
            json.dump(hf_cfg, f, indent=1)
        shutil.copy(os.path.join(ROOT, "models", "tiny-random", "tokenizer.model"), os.path.join(OUT, d))
    wmap = {}
    for i, part in enumerate(halves):
        fn = f"model-0000{i + 1}-of-00002.safetensors"
        save_st(os.path.join(OUT, "llama_st", fn), {k: llama[k] for k in part})
        wmap.update({k: fn for k in part})
    with open(os.path.join(OUT, "llama_st", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wmap}, f, indent=1)
    bmap = {}
    for i, part in enumerate(halves):
        fn = f"pytorch_model-0000{i + 1}-of-00002.bin"
        sd = collections.OrderedDict((k, llama[k].clone()) for k in part)
        if i == 0:  # old conversions saved the rotary cache too
            sd["model.layers.0.self_attn.rotary_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, 32, 2).float() / 32))
        torch.save(sd, os.path.join(OUT, "llama_bin", fn))
        bmap.update({k: fn for k in sd})
    with open(os.path.join(OUT, "llama_bin", "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": bmap}, f, indent=1)

    # CLIP: open_clip state dict with a (tiny) text tower; and HF CLIPVisionModel names.
    clip = collections.OrderedDict((k[len("vision_encoder."):], f32(v)) for k, v in base.items()
                                   if k.startswith("vision_encoder."))
    clip["token_embedding.weight"] = torch.randn(10, 8)
    clip["positional_embedding"] = torch.randn(4, 8)
    clip["logit_scale"] = torch.tensor(4.6)
    torch.save(clip, os.path.join(OUT, "clip.pt"))
    hf = {}
    for k, v in clip.items():
        if not k.startswith("visual."):
            continue
        k = k[len("visual."):]
        simple = {"conv1.weight": "embeddings.patch_embedding.weight", "class_embedding": "embeddings.class_embedding",
                  "positional_embedding": "embeddings.position_embedding.weight"}
        if k in simple:
            hf["vision_model." + simple[k]] = v
            continue
        if k == "proj":
            continue  # HF keeps it in CLIPVisionModelWithProjection only
        k = k.replace("ln_pre.", "pre_layrnorm.").replace("ln_post.", "post_layernorm.")
        if k.startswith("transformer.resblocks."):
            i = int(k.split(".")[2])
            rest = ".".join(k.split(".")[3:])
            if rest.startswith("attn.in_proj_"):
                kind = rest.split("_")[-1]
                for n, part in zip("qkv", v.chunk(3, 0)):
                    hf[f"vision_model.encoder.layers.{i}.self_attn.{n}_proj.{kind}"] = part.clone()
                continue
            rest = (rest.replace("ln_1.", "layer_norm1.").replace("ln_2.", "layer_norm2.")
                    .replace("mlp.c_fc.", "mlp.fc1.").replace("mlp.c_proj.", "mlp.fc2.")
                    .replace("attn.out_proj.", "self_attn.out_proj."))
            k = f"encoder.layers.{i}.{rest}"
        hf["vision_model." + k] = v
    save_st(os.path.join(OUT, "clip_hf.safetensors"), hf)

    # OpenFlamingo checkpoint: the trainable set (no LLaMA layers, no CLIP, no lm_head).
    of = collections.OrderedDict((k, f32(v)) for k, v in base.items()
                                 if k.startswith("perceiver.") or "gated_cross_attn_layer" in k)
    of["lang_encoder.model.embed_tokens.weight"] = f32(base["lang_encoder.model.embed_tokens.weight"])
    torch.save(of, os.path.join(OUT, "checkpoint.pt"))
    wrapped = collections.OrderedDict()
    for k, v in of.items():
        if "gated_cross_attn_layer." in k:
            i = int(k.split(".")[3])
            k = f"lang_encoder.gated_cross_attn_layers.{i}." + k.split("gated_cross_attn_layer.", 1)[1]
        wrapped["module." + k] = v
    torch.save({"model_state_dict": wrapped, "epoch": 3}, os.path.join(OUT, "checkpoint_wrapped.pt"))
    # A checkpoint that lost a tensor (the converter must name it).
    broken = collections.OrderedDict((k, v) for k, v in of.items() if k != "perceiver.layers.1.0.to_kv.weight")
    torch.save(broken, os.path.join(OUT, "checkpoint_missing.pt"))

    # Multimodal-GPT LoRA checkpoint.
    Config = fake_mmengine()
    sd = collections.OrderedDict()
    for k, v in lora.items():
        k = k.replace("lang_encoder.", "lang_encoder.base_model.model.", 1)
        k = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        sd["module." + k] = f32(v)
    cfg = Config({"lora_target_modules": CFG["lora"]["targets"], "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0})
    torch.save({"model_state_dict": sd, "tuning_config": cfg}, os.path.join(OUT, "lora.pt"))

    # Reference logits: one sequence, two images, with and without the adapters.
    ref.MEDIA, ref.PAD = CFG["tokens"]["media"], CFG["tokens"]["pad"]  # the reference reads these globals
    tokens = [1, 7, 501, 8, 9, 501, 10, 11]
    S = CFG["vision"]["image_size"]
    pixels = torch.randn(2, 3, S, S, dtype=torch.float64).to(torch.float32).to(torch.float64)
    mask = torch.ones(1, len(tokens), dtype=torch.bool)
    _, _, _, lg_base = ref.flamingo(base, CFG, torch.tensor([tokens]), mask, [pixels])
    _, _, _, lg_lora = ref.flamingo(w, CFG, torch.tensor([tokens]), mask, [pixels])
    np.save(os.path.join(OUT, "pixels.npy"), pixels.to(torch.float32).numpy())
    with open(os.path.join(OUT, "tokens.txt"), "w") as f:
        f.write(",".join(map(str, tokens)) + "\n")
    save_st(os.path.join(OUT, "expected.safetensors"), {"logits_base": f32(lg_base[0]), "logits_lora": f32(lg_lora[0])})
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CFG, f, indent=1)
    # OpenAI distributes ViT-L-14.pt as a TorchScript archive (code, not a state dict): refused with a hint.
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(OUT, "clip_jit.pt"))
    print(f"import fixtures: |logits| base {lg_base.abs().max():.3f}, lora {lg_lora.abs().max():.3f}, "
          f"max change from LoRA {(lg_lora - lg_base).abs().max():.3f}")


if __name__ == "__main__":
    main()
