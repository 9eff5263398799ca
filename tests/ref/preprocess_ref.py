#!/usr/bin/python3
"""Fixtures for tests/test_vision.c: input images and what Multimodal-GPT's preprocessing makes of them.

Multimodal-GPT's datasets (VQADataset.process_image) call Image.open(path).convert("RGB") and then open_clip's
image_transform(S, is_train=False) (SPEC.md 1.1):
    convert("RGB") -> Resize(S, BICUBIC) -> CenterCrop(S) -> _convert_to_rgb (no-op) -> ToTensor -> Normalize
Every case gets that expectation (NAME.sS.u8z). Cases whose mode is not RGB or L also get open_clip's own order
(NAME.sS.oc.u8z: Resize -> CenterCrop on the raw Image.open result, convert("RGB") after), which is what
OpenFlamingo's evaluation code does and what mmgpt's vision.open_clip_order selects. Cases marked exif are
ImageOps.exif_transpose(Image.open(path)).convert("RGB") + the transform (mmgpt's --exif).
torchvision is not installed here, so Resize and CenterCrop are written out below with torchvision's exact
arithmetic (int(S * long / short) for the long side, no resize when the size already matches, PIL's
Image.resize for PIL inputs; center crop at int(round((dim - S) / 2)), zero padding for small images).
ToTensor and Normalize run in torch, float32, as torchvision does.

Writes into tests/fixtures/vision/:
  inputs (real photos from Debian's python3-skimage, cropped/re-encoded small; synthetic edge cases),
  NAME.u8z      the expected uint8 RGB [S, S, 3] after resize + crop + convert('RGB'): byte deltas along the
                row, then down the column, zlib-compressed (small, and read by the C test with zlib alone),
  norm_lut.npy  float32 [3, 256]: torch's ToTensor+Normalize of every byte value per channel,
  chelsea.s96.f32.npy  one full float32 [3, 96, 96] tensor straight from torch (S=96 keeps it small),
  cases.json    the list: input file, S, PIL's mode and size on open, order, exif, expected file,
  bad inputs for the error tests, and fuzz_corpus/ seeds.
Run with /usr/bin/python3 (python3-pil with WebP, python3-numpy, python3-torch; python3-skimage only to remake
the photo inputs, which are kept as committed when it is missing).
"""
import io
import json
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "vision")
SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------- the reference transform
def tv_resize(img, size):
    """torchvision.transforms.Resize(size) (int) on a PIL image, BICUBIC."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), Image.BICUBIC)


def tv_center_crop(img, size):
    """torchvision.transforms.CenterCrop(size) on a PIL image."""
    w, h = img.size
    if size > w or size > h:
        ltrb = [(size - w) // 2 if size > w else 0, (size - h) // 2 if size > h else 0,
                (size - w + 1) // 2 if size > w else 0, (size - h + 1) // 2 if size > h else 0]
        img = ImageOps.expand(img, border=tuple(ltrb), fill=0)
        w, h = img.size
        if (w, h) == (size, size):
            return img
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def to_tensor_normalize(arr_u8):
    t = torch.from_numpy(np.ascontiguousarray(arr_u8)).permute(2, 0, 1).contiguous().float().div(255)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    return t.sub(mean).div(std)


def open_clip_u8(path, size):
    img = Image.open(path)
    img = tv_center_crop(tv_resize(img, size), size).convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def mmgpt_u8(path, size, exif=False):
    """Multimodal-GPT: Image.open(path).convert("RGB") before the transform (optionally turned upright first)."""
    img = Image.open(path)
    if exif:
        img = ImageOps.exif_transpose(img)
    img = tv_center_crop(tv_resize(img.convert("RGB"), size), size)
    return np.asarray(img, dtype=np.uint8)


def encode_u8(arr):
    """Byte deltas (mod 256) along each row per channel, then those deltas minus the row above's, then zlib."""
    a = arr.astype(np.int16)
    d = a.copy()
    d[:, 1:, :] = a[:, 1:, :] - a[:, :-1, :]
    e = d.copy()
    e[1:] = d[1:] - d[:-1]
    return zlib.compress((e % 256).astype(np.uint8).tobytes(), 9)


# ---------------------------------------------------------------- a small PNG writer for odd layouts
def chunk(tag, data, crc=None):
    c = zlib.crc32(tag + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", c)


def pack_row(samples, depth):
    if depth >= 8:
        return bytes(np.asarray(samples, dtype=">u2" if depth == 16 else np.uint8).tobytes())
    per = 8 // depth
    out = bytearray()
    for i in range(0, len(samples), per):
        b = 0
        for j in range(per):
            v = samples[i + j] if i + j < len(samples) else 0
            b |= (int(v) & ((1 << depth) - 1)) << (8 - depth * (j + 1))
        out.append(b)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def sub_filter(row, bpp):
    """PNG filter type 1 (Sub): each byte minus the byte one pixel to the left."""
    r = np.frombuffer(row, np.uint8).astype(np.int16)
    d = r.copy()
    d[bpp:] = r[bpp:] - r[:-bpp]
    return b"\1" + (d % 256).astype(np.uint8).tobytes()


def png_bytes(pix, depth, ctype, plte=None, trns=None, interlace=False):
    """pix: [h, w, channels] integer samples (channels = samples per pixel for the colour type)."""
    h, w = pix.shape[:2]
    bpp = max(1, pix.shape[2] * depth // 8) if pix.ndim == 3 else max(1, depth // 8)
    raw = bytearray()
    passes = [(0, 0, 1, 1)] if not interlace else ADAM7
    for x0, y0, dx, dy in passes:
        sub = pix[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += sub_filter(pack_row(row.reshape(-1), depth), bpp)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, int(interlace)))
    if plte is not None:
        out += chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        out += chunk(b"tRNS", bytes(trns))
    out += chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")
    return out


# ---------------------------------------------------------------- inputs
def smooth(h, w, ch, seed, noise=0):
    """Gradients, a disc and mild noise: structure for the filters, still compressible."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(ch):
        fx, fy = rng.uniform(0.5, 3.0, 2)
        p = 127 + 100 * np.sin(x / max(w, 1) * 6.28 * fx + c) * np.cos(y / max(h, 1) * 6.28 * fy)
        disc = ((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2) < (min(h, w) * 0.25) ** 2
        p = np.where(disc, 255 - p, p) + rng.randint(-noise, noise + 1, (h, w))
        planes.append(np.clip(p, 0, 255))
    return np.stack(planes, -1).astype(np.uint8)


def save(img, name, **kw):
    path = os.path.join(OUT, name)
    img.save(path, **kw)
    return name


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return name


def make_inputs():
    """Returns [(file, S)]. Real photos run at S = 224; most synthetic mode variants at S = 112 or less, which
    exercises the same code paths and keeps the expected arrays small."""
    cases = []

    # Real photos from scikit-image's data directory, cropped and re-encoded small. Without python3-skimage the
    # committed files are kept as they are.
    have_sk = os.path.isdir(SKIMAGE)
    save, write = globals()["save"], globals()["write"]

    def sk(name):
        return Image.open(os.path.join(SKIMAGE, name))

    if not have_sk:
        def sk(name):  # noqa: F811 - a stand-in whose result is never saved
            return Image.new("RGB", (640, 480))

        def save(img, name, **kw):  # noqa: F811 - keep the committed photo
            assert os.path.exists(os.path.join(OUT, name)), name + ": needs python3-skimage to be made"
            return name

        def write(name, data):  # noqa: F811
            assert os.path.exists(os.path.join(OUT, name)), name + ": needs python3-skimage to be made"
            return name

    cases.append((save(sk("chelsea.png").convert("RGB"), "chelsea.jpg", quality=85), 224))  # 451x300 cat
    coffee = sk("coffee.png").convert("RGB").crop((40, 20, 440, 330))
    cases.append((save(coffee, "coffee.jpg", quality=80, subsampling=0), 224))  # 4:4:4
    astro = sk("astronaut.png").convert("RGB").crop((110, 10, 330, 250))
    cases.append((save(astro, "astronaut_crop.png", optimize=True), 224))
    rocket = sk("rocket.jpg").crop((100, 0, 540, 427))
    cases.append((save(rocket, "rocket.jpg", quality=75), 224))  # downscale factor 1.9
    cases.append((save(sk("rocket.jpg").crop((0, 100, 300, 427)), "rocket_progressive.jpg", quality=70,
                       progressive=True), 112))
    logo = sk("logo.png").crop((80, 80, 340, 310))  # RGBA with transparent areas
    cases.append((save(logo, "logo_rgba.png", optimize=True), 224))
    camera = sk("camera.png").crop((100, 50, 420, 290))  # L
    cases.append((save(camera, "camera_grey.jpg", quality=80), 224))
    for name in ["green_palette.png",  # P, 320x240
                 "foo3x5x4indexed.png",  # P with tRNS, 5x3
                 "checker_bilevel.png"]:  # mode 1, 10x10
        if have_sk:
            with open(os.path.join(SKIMAGE, name), "rb") as f:
                cases.append((write(name, f.read()), 224))
        else:
            cases.append((write(name, b""), 224))
    save, write = globals()["save"], globals()["write"]

    # Synthetic edge cases.
    cases.append((save(Image.fromarray(np.array([[[200, 30, 90]]], np.uint8)), "px1x1.png"), 224))
    cases.append((save(Image.fromarray(smooth(1, 5000, 3, 1)), "strip1x5000.png"), 224))  # resizes to 1120000x224
    cases.append((save(Image.fromarray(smooth(5000, 1, 3, 2)), "strip5000x1.png"), 224))
    cases.append((save(Image.fromarray(smooth(7, 2100, 3, 3)), "wide2100x7.png"), 224))
    cases.append((save(Image.fromarray(smooth(1500, 19, 3, 4)), "tall19x1500.jpg", quality=90), 224))
    cases.append((save(Image.fromarray(smooth(30, 50, 3, 5)), "small50x30.png"), 224))  # upscale
    cases.append((save(Image.fromarray(smooth(20, 13, 3, 5, noise=40)), "tiny13x20_noise.png"), 224))
    cases.append((save(Image.fromarray(smooth(103, 100, 3, 6)), "exact100x103.png"), 100))  # no resize, round(1.5)=2
    cases.append((save(Image.fromarray(smooth(100, 105, 3, 7)), "exact105x100.png"), 100))  # round(2.5) = 2
    cases.append((save(Image.fromarray(smooth(600, 601, 3, 8)), "near_square601x600.jpg", quality=85), 160))
    cases.append((save(Image.fromarray(smooth(300, 400, 3, 9)), "sizes400x300.png"), 64))  # other S
    cases.append(("sizes400x300.png", 100))
    cases.append(("sizes400x300.png", 299))  # upscale of the short side only
    grey = smooth(130, 170, 1, 10)[..., 0]
    cases.append((save(Image.fromarray(grey, "L"), "grey170x130.png"), 112))
    la = np.stack([grey, smooth(130, 170, 1, 11)[..., 0]], -1)
    la[:20, :, 1] = 0  # fully transparent band: premultiplied resize turns it black
    la[20:30, :, 1] = 255
    cases.append((save(Image.fromarray(la, "LA"), "grey_alpha170x130.png"), 112))
    rgba = np.concatenate([smooth(125, 165, 3, 12), smooth(125, 165, 1, 13)], -1)
    rgba[:, :15, 3] = 0
    rgba[:, 15:25, 3] = 255
    rgba[50:60, :, 3] = 1
    cases.append((save(Image.fromarray(rgba, "RGBA"), "rgba165x125.png"), 112))
    cases.append((save(Image.fromarray(rgba[:112, :150], "RGBA"), "rgba_noresize150x112.png"), 112))
    # 16-bit PNGs: grey opens as "I" and is clipped to 0..255 by convert('RGB'); colour keeps high bytes.
    g16 = (np.clip(smooth(125, 150, 1, 14)[..., 0].astype(np.int64) * 3 - 100, 0, 65535)).astype(np.uint16)
    g16[:25] = (np.arange(150) * 437)[None, :]  # a ramp over the whole 16-bit range
    g16[25:35] = (np.arange(150) * 2)[None, :]  # a ramp over 0..300 (clipping at 255 shows)
    cases.append((write("grey16_150x125.png", png_bytes(g16[..., None], 16, 0)), 112))
    yy, xx = np.mgrid[0:120, 0:160]
    low = ((xx * 7 + yy * 3) % 256)[..., None]  # structured low bytes: PIL must ignore them, and they compress
    rgb16 = (smooth(120, 160, 3, 15).astype(np.uint16) * 256 + low).astype(np.uint16)
    cases.append((write("rgb16_160x120.png", png_bytes(rgb16, 16, 2)), 112))
    rgba16 = np.concatenate([rgb16, (smooth(120, 160, 1, 17).astype(np.uint16) * 257)], -1)
    cases.append((write("rgba16_160x120.png", png_bytes(rgba16, 16, 6)), 112))
    la16 = np.stack([g16[:120] * 7, (smooth(120, 150, 1, 18)[..., 0].astype(np.uint16) * 257)], -1)
    cases.append((write("grey_alpha16_150x120.png", png_bytes(la16, 16, 4)), 112))
    cases.append((write("grey16_interlaced90x70.png", png_bytes(g16[:70, :90, None], 16, 0, interlace=True)), 64))
    # Low bit depths.
    cases.append((write("grey2bit_130x115.png", png_bytes((smooth(115, 130, 1, 19) // 64), 2, 0)), 112))
    cases.append((write("grey4bit_130x115.png", png_bytes((smooth(115, 130, 1, 20) // 16), 4, 0)), 112))
    bilevel = (smooth(250, 270, 1, 21) > 127).astype(np.uint8)
    cases.append((write("bilevel270x250.png", png_bytes(bilevel, 1, 0)), 224))
    # Palettes: 8-bit with a per-entry tRNS, a 4-bit one whose PLTE is shorter than the indices used
    # (PIL: grey ramp beyond the PLTE), an interlaced one; nearest-neighbour resizing in PIL.
    rng = np.random.RandomState(22)
    pal = rng.randint(0, 256, (200, 3))
    idx = (smooth(260, 310, 1, 23)[..., 0].astype(np.int64) * 199 // 255).astype(np.uint8)
    cases.append((write("palette_trns310x260.png", png_bytes(idx[..., None], 8, 3, plte=pal,
                                                             trns=rng.randint(0, 256, 150).astype(np.uint8))), 112))
    idx4 = (smooth(125, 115, 1, 24)[..., 0] // 16).astype(np.uint8)
    cases.append((write("palette_short115x125.png", png_bytes(idx4[..., None], 4, 3, plte=pal[:9])), 112))
    cases.append((write("palette_interlaced150x130.png",
                        png_bytes(idx[:130, :150, None], 8, 3, plte=pal, interlace=True)), 112))
    cases.append((write("rgb_interlaced125x121.png", png_bytes(smooth(121, 125, 3, 25), 8, 2, interlace=True)), 112))
    # JPEG variants: CMYK (PIL writes an Adobe marker; read back inverted), progressive 4:2:0, grey progressive,
    # 4:2:2.
    cmyk = np.concatenate([smooth(240, 310, 3, 26), smooth(240, 310, 1, 27) // 3], -1)
    cases.append((save(Image.fromarray(cmyk, "CMYK"), "cmyk310x240.jpg", quality=90), 224))
    cases.append((save(Image.fromarray(smooth(130, 175, 3, 28)), "progressive175x130.jpg", quality=85,
                       progressive=True, subsampling=2), 112))
    cases.append((save(Image.fromarray(grey, "L"), "grey_progressive170x130.jpg", quality=85,
                       progressive=True), 112))
    cases.append((save(Image.fromarray(smooth(100, 150, 3, 29)), "small150x100_422.jpg", quality=95,
                       subsampling=1), 224))
    return cases + make_small_inputs()


def gif_patch(data, screen=None, offset=None):
    """A GIF with its logical screen size and/or its first frame's offset rewritten (LZW data untouched)."""
    b = bytearray(data)
    if screen:
        b[6:10] = struct.pack("<HH", *screen)
    at = 13 + (3 << ((b[10] & 7) + 1) if b[10] & 0x80 else 0)
    while b[at] == 0x21:  # extensions: label, then sub-blocks up to a zero length
        at += 2
        while b[at]:
            at += b[at] + 1
        at += 1
    assert b[at] == 0x2C, "image descriptor expected"
    if offset:
        b[at + 1:at + 5] = struct.pack("<HH", *offset)
    return bytes(b)


def exif_bytes(orientation):
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def make_small_inputs():
    """Small files (40x30 and the like) for every mode and format Multimodal-GPT's convert("RGB") meets:
    PIL's own palette, alpha, bilevel and CMYK writers, 16-bit PNGs, WebP (lossy, lossless, alpha, animated),
    GIF (transparency, several frames, interlaced or not, grey, a first frame off the screen's origin or past
    its edge) and EXIF orientations. Returns [(file, S)] or [(file, S, exif)]."""
    c = []
    rgb = Image.fromarray(smooth(30, 40, 3, 50, noise=6))
    alpha = np.clip(np.arange(40)[None, :] * 7 - 20, 0, 255).repeat(30, 0).astype(np.uint8)
    alpha[10:14] = 0  # a fully transparent band, and a ramp through partial transparency
    rgba = Image.fromarray(np.concatenate([np.asarray(rgb), alpha[..., None]], -1), "RGBA")
    pal = rgb.quantize(16)
    c.append((save(pal, "pil_palette40x30.png"), 24))
    c.append((save(pal, "pil_palette_trns40x30.png", transparency=3), 24))
    c.append((save(rgba.quantize(32), "pil_palette_alpha40x30.png", transparency=5), 64))
    c.append((save(rgba, "pil_rgba40x30.png"), 24))
    c.append((save(Image.merge("LA", (rgb.convert("L"), Image.fromarray(alpha))), "pil_la40x30.png"), 24))
    c.append((save(rgb.convert("1"), "pil_bilevel40x30.png"), 24))
    c.append((save(Image.merge("CMYK", rgb.split() + (Image.fromarray(alpha // 2),)), "cmyk40x30.jpg",
                   quality=90), 24))
    g16 = (smooth(30, 40, 1, 51).astype(np.uint16) * 3 + np.arange(40, dtype=np.uint16)[None, :, None] * 9)
    c.append((write("grey16_40x30.png", png_bytes(g16, 16, 0)), 24))
    c.append((write("rgb16_40x30.png", png_bytes(smooth(30, 40, 3, 52).astype(np.uint16) * 257 + 77, 16, 2)), 24))
    # WebP as Pillow writes it (libwebp): lossy, lossless, both with alpha, one that needs downscaling, and an
    # animation whose second frame must not show.
    c.append((save(rgb, "lossy40x30.webp", quality=60), 24))
    c.append(("lossy40x30.webp", 224))  # at the tiny test model's size: test_chat, test_serve, test_data
    c.append((save(rgb, "lossless40x30.webp", lossless=True), 24))
    c.append((save(rgba, "lossy_alpha40x30.webp", quality=60), 24))
    c.append((save(rgba, "lossless_alpha40x30.webp", lossless=True), 32))
    c.append((save(Image.fromarray(smooth(200, 300, 3, 53, noise=3)), "lossy300x200.webp", quality=30), 112))
    frame2 = Image.fromarray(255 - np.asarray(rgb))
    c.append((save(rgb, "animated40x30.webp", save_all=True, append_images=[frame2], duration=100, quality=70), 24))
    # GIF: transparency, three frames, interlaced (Pillow's default) and not, grey (opens as L), and hand-placed
    # first frames.
    c.append((save(pal, "trns40x30.gif", transparency=2), 24))
    c.append((save(pal, "frames40x30.gif", save_all=True, append_images=[frame2.quantize(16), rgb.quantize(8)],
                   duration=80, loop=0, interlace=False), 24))
    # Every grey level used: Pillow writes the identity ramp, which reads back as L.
    grey = Image.fromarray((np.arange(1200).reshape(30, 40) * 7 % 256).astype(np.uint8), "L")
    c.append((save(grey, "grey40x30.gif"), 24))
    c.append((save(Image.fromarray(smooth(60, 45, 3, 54)).quantize(64), "interlaced45x60.gif"), 32))
    b = io.BytesIO()
    Image.fromarray(smooth(10, 20, 3, 55)).quantize(8).save(b, "GIF", transparency=6, interlace=False)
    c.append((write("offset_frame40x30.gif", gif_patch(b.getvalue(), screen=(40, 30), offset=(5, 7))), 24))
    c.append((write("frame_past_screen.gif", gif_patch(b.getvalue(), screen=(10, 5), offset=(3, 2))), 24))
    b = io.BytesIO()
    Image.fromarray(smooth(10, 20, 3, 56)).quantize(8).save(b, "GIF", interlace=False)
    c.append((write("offset_frame_opaque.gif", gif_patch(b.getvalue(), screen=(30, 22), offset=(9, 4))), 24))
    # EXIF orientation: every value on a tiny PNG (eXIf), and a JPEG and a WebP; with exif on, and once off.
    small = Image.fromarray(smooth(8, 12, 3, 57))
    for o in range(1, 9):
        c.append((save(small, f"exif_o{o}_12x8.png", exif=exif_bytes(o)), 10, True))
    c.append(("exif_o6_12x8.png", 10, False))
    c.append((save(rgb, "exif_o6_40x30.jpg", quality=85, exif=exif_bytes(6)), 24, True))
    c.append(("exif_o6_40x30.jpg", 224, True))  # test_serve's exif_orientation requests, on and off
    c.append(("exif_o6_40x30.jpg", 224, False))
    c.append((save(rgb, "exif_o8_40x30.webp", quality=70, exif=exif_bytes(8)), 24, True))
    # PNG's other orientation carriers that PIL's getexif reads: ImageMagick's "Raw profile type exif" zTXt
    # (hex EXIF after three header lines), XMP's tiff:Orientation in iTXt, and an eXIf that outranks XMP.
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", raw_profile(exif_bytes(6)), zip=True)
    c.append((save(small, "exif_raw_profile_12x8.png", pnginfo=info), 10, True))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.format("tiff:Orientation=\"8\""))
    c.append((save(small, "exif_xmp_12x8.png", pnginfo=info), 10, True))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.format("><tiff:Orientation>8</tiff:Orientation"), zip=True)
    c.append((save(small, "exif_xmp_under_exif_12x8.png", pnginfo=info, exif=exif_bytes(3)), 10, True))
    return c


XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"{}/></rdf:RDF></x:xmpmeta>')


def raw_profile(exif):
    """ImageMagick's text form of an EXIF block: a newline, the profile name, the length, then hex lines."""
    h = exif.hex()
    return "\nexif\n" + f"{len(exif):8d}\n" + "\n".join(h[i:i + 72] for i in range(0, len(h), 72)) + "\n"


def make_bad_inputs(good_png, good_jpg):
    bad = {}
    bad["truncated.jpg"] = good_jpg[: len(good_jpg) // 2]
    bad["truncated_header.jpg"] = good_jpg[:40]
    bad["truncated.png"] = good_png[: len(good_png) // 2]
    bad["truncated_header.png"] = good_png[:20]
    bad["wrong_magic.png"] = b"BM6" + good_png[3:200]
    bad["text.jpg"] = b"this is not an image at all\n"
    bad["empty.png"] = b""
    # IHDR claiming 100000 x 100000 (valid CRC, tiny IDAT): must be refused before allocating 30 GB.
    bad["huge_header.png"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    # Bad CRC on IHDR, and on IDAT.
    p = bytearray(good_png)
    p[29] ^= 0xFF  # IHDR CRC (8 magic + 4 len + 4 tag + 13 data = byte 29)
    bad["bad_crc_ihdr.png"] = bytes(p)
    i = good_png.find(b"IDAT")
    n = struct.unpack(">I", good_png[i - 4:i])[0]
    p = bytearray(good_png)
    p[i + 4 + n] ^= 0x55
    bad["bad_crc_idat.png"] = bytes(p)
    # Corrupt deflate data with a correct CRC.
    data = bytearray(good_png[i + 4:i + 4 + n])
    for k in range(2, min(len(data), 40)):
        data[k] ^= 0xA5
    bad["corrupt_zlib.png"] = good_png[:i - 4] + chunk(b"IDAT", bytes(data)) + chunk(b"IEND", b"")
    bad["zero_width.png"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0))
                             + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    # JPEG whose entropy-coded data is garbage after the headers, and one with a corrupt SOF.
    sos = good_jpg.find(b"\xff\xda")
    bad["corrupt_sof.jpg"] = good_jpg.replace(b"\xff\xc0\x00\x11\x08", b"\xff\xc0\x00\x11\x07", 1)
    bad["bad_huffman.jpg"] = good_jpg[:sos] + b"\xff\xda\x00\x03\xff" + good_jpg[sos + 5:]
    return bad


def make_bad_webp_gif(webp, anim_webp, gif):
    bad = {}
    bad["truncated.webp"] = webp[: len(webp) // 2]
    bad["truncated_header.webp"] = webp[:20]
    i = webp.find(b"\x9d\x01\x2a")  # the VP8 key frame start code
    bad["bad_vp8.webp"] = webp[:i] + b"\x00\x00\x00" + webp[i + 3:]
    i = anim_webp.find(b"VP8X") + 8  # canvas 20000 x 20000 (minus-one, 24-bit little endian)
    bad["huge_canvas.webp"] = anim_webp[:i + 4] + struct.pack("<I", 19999)[:3] * 2 + anim_webp[i + 10:]
    bad["truncated.gif"] = gif[: len(gif) * 3 // 4]  # inside the LZW data
    bad["truncated_header.gif"] = gif[:10]
    bad["huge_screen.gif"] = gif_patch(gif, screen=(65535, 65535))
    bad["no_image.gif"] = gif[:13 + (3 << ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)] + b";"
    at = gif.find(b",")
    while gif[at + 9] & 0x80 or at < 13:  # the first image descriptor after the global table
        at = gif.find(b",", at + 1)
    lzw = at + 10
    bad["bad_lzw.gif"] = gif[:lzw] + b"\x0f" + gif[lzw + 1:]  # LZW minimum code size 15 (at most 8 is valid)
    return bad


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = make_inputs()
    manifest = []
    for case in cases:
        fname, size, exif = case if len(case) == 3 else case + (False,)
        path = os.path.join(OUT, fname)
        im = Image.open(path)
        stem = os.path.splitext(fname)[0] + f".s{size}"
        runs = [("rgb_first", stem + (".exif" if exif else "") + ".u8z", mmgpt_u8(path, size, exif))]
        if im.mode not in ("RGB", "L") and not exif:  # the two orders agree on RGB and L
            runs.append(("open_clip", stem + ".oc.u8z", open_clip_u8(path, size)))
        gaps = []
        for order, exp, u8 in runs:
            assert u8.shape == (size, size, 3), (fname, u8.shape)
            write(exp, encode_u8(u8))
            manifest.append({"input": fname, "size": size, "mode": im.mode, "width": im.width, "height": im.height,
                             "order": order, "exif": exif, "expected": exp})
        if len(runs) == 2:
            gaps.append(int(np.abs(runs[0][2].astype(int) - runs[1][2].astype(int)).max()))
        print(f"{fname:34s} {im.mode:5s} {im.width}x{im.height} -> S={size}" + (" exif" if exif else "")
              + (f"  orders differ by up to {gaps[0]}/255" if gaps else ""))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")

    # ToTensor+Normalize of every byte value, and one full tensor end to end.
    vals = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (1, 1, 3))
    np.save(os.path.join(OUT, "norm_lut.npy"), to_tensor_normalize(vals).numpy().reshape(3, 256))
    t = to_tensor_normalize(mmgpt_u8(os.path.join(OUT, "chelsea.jpg"), 96))
    np.save(os.path.join(OUT, "chelsea.s96.f32.npy"), t.numpy().astype(np.float32))

    with open(os.path.join(OUT, "small50x30.png"), "rb") as f:
        good_png = f.read()
    with open(os.path.join(OUT, "small150x100_422.jpg"), "rb") as f:
        good_jpg = f.read()
    bad_dir = os.path.join(OUT, "bad")
    os.makedirs(bad_dir, exist_ok=True)
    def rd(name):
        with open(os.path.join(OUT, name), "rb") as f:
            return f.read()

    bad_all = make_bad_inputs(good_png, good_jpg)
    bad_all.update(make_bad_webp_gif(rd("lossy300x200.webp"), rd("animated40x30.webp"), rd("trns40x30.gif")))
    for name, data in bad_all.items():
        with open(os.path.join(bad_dir, name), "wb") as f:
            f.write(data)
        try:
            Image.open(io.BytesIO(data)).convert("RGB")
            verdict = "PIL accepts"
        except Exception as ex:  # noqa: BLE001 - reporting PIL's verdict only
            verdict = f"PIL: {type(ex).__name__}"
        print(f"bad/{name:24s} {len(data):6d} bytes  {verdict}")

    # Tiny seeds for the libFuzzer target (tools/fuzz_image.c).
    seeds = os.path.join(OUT, "fuzz_corpus")
    os.makedirs(seeds, exist_ok=True)
    sm = Image.fromarray(smooth(12, 17, 3, 40))
    small = {
        "rgb.png": png_bytes(np.asarray(sm), 8, 2),
        "grey16.png": png_bytes(g16_small(), 16, 0),
        "pal_trns_interlaced.png": png_bytes(np.arange(60, dtype=np.uint8).reshape(6, 10, 1) % 7, 4, 3,
                                             plte=np.arange(21).reshape(7, 3) * 12, trns=[0, 128, 255], interlace=True),
        "la.png": png_bytes(np.stack([np.arange(48).reshape(6, 8) * 5, np.arange(48).reshape(6, 8)[::-1] * 5], -1), 8, 4),
        "bilevel.png": png_bytes((np.arange(63).reshape(7, 9) % 3 == 0).astype(np.uint8)[..., None], 1, 0),
    }
    for q, kw, name in [(75, {}, "rgb.jpg"), (60, {"progressive": True}, "progressive.jpg")]:
        b = io.BytesIO()
        sm.save(b, "JPEG", quality=q, **kw)
        small[name] = b.getvalue()
    b = io.BytesIO()
    Image.fromarray(np.concatenate([np.asarray(sm), np.asarray(sm)[..., :1]], -1), "CMYK").save(b, "JPEG", quality=70)
    small["cmyk.jpg"] = b.getvalue()
    b = io.BytesIO()
    sm.convert("L").save(b, "JPEG", quality=70)
    small["grey.jpg"] = b.getvalue()
    for name, kw in [("lossy.webp", {"quality": 50}), ("lossless.webp", {"lossless": True})]:
        b = io.BytesIO()
        sm.save(b, "WEBP", **kw)
        small[name] = b.getvalue()
    sma = Image.fromarray(np.concatenate([np.asarray(sm), np.asarray(sm)[..., :1]], -1), "RGBA")
    b = io.BytesIO()
    sma.save(b, "WEBP", quality=50, exif=exif_bytes(6))
    small["alpha_exif.webp"] = b.getvalue()
    b = io.BytesIO()
    sm.save(b, "WEBP", save_all=True, append_images=[sma], quality=40)
    small["animated.webp"] = b.getvalue()
    b = io.BytesIO()
    sm.quantize(8).save(b, "GIF", save_all=True, append_images=[sma.quantize(4)], transparency=1)
    small["frames_trns.gif"] = b.getvalue()
    b = io.BytesIO()
    sm.save(b, "JPEG", quality=50, exif=exif_bytes(8))
    small["exif.jpg"] = b.getvalue()
    b = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", raw_profile(exif_bytes(6)), zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.format("tiff:Orientation=\"8\""))
    sm.save(b, "PNG", pnginfo=info)
    small["raw_profile_xmp.png"] = b.getvalue()
    for name, data in small.items():
        with open(os.path.join(seeds, name), "wb") as f:
            f.write(data)


def g16_small():
    return (np.arange(80, dtype=np.uint16).reshape(8, 10) * 800)[..., None]


if __name__ == "__main__":
    main()
