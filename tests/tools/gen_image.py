#!/usr/bin/python3
"""Reference data for tests/test_image.c, made at test time (never committed).

Writes into --out:
  decode/    synthetic PNGs and JPEGs, each with NAME.rgb / NAME.gray: the
             pixels PIL decodes (Image.open(p).convert("RGB") / ("L")), except
             16-bit PNGs, whose expectation is numpy round(v / 257) (PIL's own
             16-bit modes are lossy in odd ways);
  bad/       truncated, empty, corrupt and oversized files;
  resize/    raw sources, PIL Image.resize(..., BILINEAR) results and
             resize_cases.txt (one case a line);
  preprocess/ PNG sources, torchvision Resize/CenterCrop/ToTensor/Normalize
             results as raw float32 and preprocess_cases.txt;
  bottle/    only when --shared has MVTec bottle: decoded pixels, 256x256
             resizes and the default preprocessing, listed in bottle_cases.txt.
Raw images are row-major interleaved uint8; float32 files little-endian.
"""
import argparse
import os
import struct
import sys
import warnings
import zlib

import numpy as np
from PIL import Image

try:
    import torch
    import torchvision.transforms as T
except ImportError:  # the C test then fails on the missing files, loudly
    torch = None

# PIL nags about palette images with tRNS on convert(); the expectation
# deliberately ignores transparency, so the warning is only noise.
warnings.filterwarnings("ignore", message="Palette images with Transparency")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- PNG writer
# PIL cannot write 16-bit RGB, 1/2/4-bit gray with chosen filters, tRNS on
# gray or interlaced PNGs, so those are written here from numpy arrays.

def chunk(tag, data):
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def pack_row(row, depth):
    """One scanline of samples (1-D array) as PNG bytes."""
    if depth == 16:
        return row.astype(">u2").tobytes()
    if depth == 8:
        return row.astype(np.uint8).tobytes()
    per_byte = 8 // depth
    padded = np.zeros(-(-len(row) // per_byte) * per_byte, dtype=np.uint8)
    padded[: len(row)] = row
    out = np.zeros(len(padded) // per_byte, dtype=np.uint8)
    for i in range(per_byte):
        out |= padded[i::per_byte] << (8 - depth * (i + 1))
    return out.tobytes()


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(ftype, row, prev, bpp):
    """Apply PNG filter ftype (0..4) to row bytes given the previous row."""
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ftype]
        out[i] = (x - pred) & 0xFF
    return bytes([ftype]) + bytes(out)


def scanlines(img, depth, channels, cycle_filters):
    """Filtered scanlines of one (sub)image: img is (h, w) or (h, w, c)."""
    h, w = img.shape[:2]
    bpp = max(1, channels * depth // 8)
    flat = img.reshape(h, w * channels)
    data = b""
    prev = bytes(len(pack_row(flat[0], depth))) if h else b""
    for y in range(h):
        row = pack_row(flat[y], depth)
        ftype = (y % 5) if cycle_filters else 0
        data += filter_row(ftype, row, prev, bpp)
        prev = row
    return data


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, img, color_type, depth, palette=None, trns=None,
              interlace=False, cycle_filters=False):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    h, w = img.shape[:2]
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = img[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += scanlines(sub, depth, channels, cycle_filters)
    else:
        raw = scanlines(img, depth, channels, cycle_filters)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type,
                                      0, 0, 1 if interlace else 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(raw, 9))
    out += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


# ------------------------------------------------------------ test pictures

def picture(w, h, channels, seed):
    """Gradients, a hard edge and noise: exercises every filter tap."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for c in range(channels):
        base = (x * (97 + 31 * c) / max(w, 1) + y * (53 + 17 * c) / max(h, 1))
        edge = np.where((x + 2 * y + 5 * c) % 23 < 11, 60, 0)
        noise = rng.integers(0, 40, size=(h, w))
        planes.append((base + edge + noise) % 256)
    arr = np.stack(planes, axis=-1).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


def save_expected(path, rgb, gray):
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and gray.ndim == 2
    with open(path + ".rgb", "wb") as f:
        f.write(rgb.tobytes())
    with open(path + ".gray", "wb") as f:
        f.write(gray.tobytes())


def save_pil_expected(path):
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    with Image.open(path) as im:
        gray = np.asarray(im.convert("L"))
    save_expected(path, rgb, gray)
    return rgb


def round257(v):
    return np.round(v.astype(np.float64) / 257.0).astype(np.uint8)


def luma(rgb):
    """PIL's "L": (R*19595 + G*38470 + B*7471 + 0x8000) >> 16."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def check_pil_agrees(path, rgb):
    """Our PNG writer must produce what it meant: PIL reads it back."""
    with Image.open(path) as im:
        got = np.asarray(im.convert("RGB"))
    if not np.array_equal(got, rgb):
        sys.exit(f"gen_image: PIL reads {path} differently from its source")


def make_decode_pngs(d):
    def pil_save(name, arr, mode, **kw):
        p = os.path.join(d, name)
        Image.fromarray(arr, mode).save(p, **kw)
        save_pil_expected(p)

    pil_save("gray8.png", picture(37, 23, 1, 1), "L")
    pil_save("gray_alpha.png", picture(29, 13, 2, 2), "LA")
    pil_save("rgb8.png", picture(64, 48, 3, 3), "RGB")
    pil_save("rgba8.png", picture(40, 30, 4, 4), "RGBA")
    pil_save("one_pixel.png", np.array([[[200, 100, 7]]], np.uint8), "RGB")
    pil_save("strip.png", picture(10000, 10, 3, 5), "RGB")
    pil_save("odd7x3.png", picture(7, 3, 3, 6), "RGB")

    # 8-bit RGB with every filter type (None, Sub, Up, Average, Paeth).
    p = os.path.join(d, "rgb8_filters.png")
    src = picture(33, 21, 3, 7)
    write_png(p, src, 2, 8, cycle_filters=True)
    save_pil_expected(p)
    check_pil_agrees(p, src)

    # 16-bit: values on both sides of every rounding boundary of v / 257.
    rng = np.random.default_rng(8)
    edges = np.array([0, 65535, 128, 129, 257 * 100 + 128, 257 * 100 + 129,
                      257 * 254 + 128, 257 * 254 + 129, 65407, 65408],
                     np.uint16)

    def samples16(shape):
        v = rng.integers(0, 65536, size=shape, dtype=np.uint16).ravel()
        v[: len(edges)] = edges
        return v.reshape(shape)

    g16 = samples16((17, 31))
    write_png(os.path.join(d, "gray16.png"), g16, 0, 16, cycle_filters=True)
    save_expected(os.path.join(d, "gray16.png"),
                  np.repeat(round257(g16)[..., None], 3, axis=2), round257(g16))
    ga16 = samples16((11, 19, 2))
    write_png(os.path.join(d, "gray_alpha16.png"), ga16, 4, 16)
    save_expected(os.path.join(d, "gray_alpha16.png"),
                  np.repeat(round257(ga16[..., 0])[..., None], 3, axis=2),
                  round257(ga16[..., 0]))
    for name, ct, shape in (("rgb16.png", 2, (19, 23, 3)),
                            ("rgba16.png", 6, (11, 19, 4))):
        v = samples16(shape)
        write_png(os.path.join(d, name), v, ct, 16, cycle_filters=True)
        rgb = round257(v[..., :3])
        save_expected(os.path.join(d, name), rgb, luma(rgb))

    # Palettes, with and without transparency, 8 and 4 bits.
    pal = rng.integers(0, 256, size=(200, 3), dtype=np.uint8)
    idx = rng.integers(0, 200, size=(27, 45), dtype=np.uint8)
    p = os.path.join(d, "palette.png")
    write_png(p, idx, 3, 8, palette=pal)
    save_pil_expected(p)
    check_pil_agrees(p, pal[idx])
    p = os.path.join(d, "palette_trns.png")
    write_png(p, idx, 3, 8, palette=pal,
              trns=bytes(rng.integers(0, 256, size=150, dtype=np.uint8)))
    save_pil_expected(p)
    check_pil_agrees(p, pal[idx])
    idx4 = rng.integers(0, 16, size=(9, 35), dtype=np.uint8)
    p = os.path.join(d, "palette4.png")
    write_png(p, idx4, 3, 4, palette=pal[:16])
    save_pil_expected(p)
    check_pil_agrees(p, pal[:16][idx4])

    # Low bit depth gray (odd widths: rows end in a partial byte).
    for depth, (h, w) in ((1, (11, 37)), (2, (7, 13)), (4, (5, 21))):
        v = rng.integers(0, 1 << depth, size=(h, w), dtype=np.uint8)
        p = os.path.join(d, f"gray{depth}.png")
        write_png(p, v, 0, depth)
        scaled = (v.astype(np.uint32) * 255 // ((1 << depth) - 1)).astype(np.uint8)
        save_pil_expected(p)
        check_pil_agrees(p, np.repeat(scaled[..., None], 3, axis=2))

    # Gray with a tRNS color key (alpha to be ignored).
    p = os.path.join(d, "gray_trns.png")
    v = picture(15, 9, 1, 9)
    write_png(p, v, 0, 8, trns=struct.pack(">H", int(v[0, 0])))
    save_pil_expected(p)
    check_pil_agrees(p, np.repeat(v[..., None], 3, axis=2))

    # Adam7 interlaced, 8-bit RGB, 16-bit gray and 1-bit gray.
    p = os.path.join(d, "rgb_interlaced.png")
    src = picture(37, 29, 3, 10)
    write_png(p, src, 2, 8, interlace=True, cycle_filters=True)
    save_pil_expected(p)
    check_pil_agrees(p, src)
    g16 = samples16((11, 13))
    p = os.path.join(d, "gray16_interlaced.png")
    write_png(p, g16, 0, 16, interlace=True)
    save_expected(p, np.repeat(round257(g16)[..., None], 3, axis=2),
                  round257(g16))
    v = rng.integers(0, 2, size=(10, 19), dtype=np.uint8)
    p = os.path.join(d, "gray1_interlaced.png")
    write_png(p, v, 0, 1, interlace=True)
    save_pil_expected(p)
    check_pil_agrees(p, np.repeat((v * 255)[..., None], 3, axis=2))


def make_decode_jpegs(d, bottle_png):
    smooth = picture(67, 45, 3, 11)

    def save(name, arr, mode, **kw):
        p = os.path.join(d, name)
        Image.fromarray(arr, mode).save(p, "JPEG", **kw)
        if mode != "CMYK":
            save_pil_expected(p)

    save("rgb420.jpg", smooth, "RGB", quality=90)
    save("rgb444.jpg", smooth, "RGB", quality=95, subsampling=0)
    save("rgb422.jpg", smooth, "RGB", quality=85, subsampling=1)
    save("progressive.jpg", smooth, "RGB", quality=80, progressive=True)
    save("gray.jpg", picture(33, 17, 1, 12), "L", quality=90)
    save("cmyk.jpg", picture(24, 16, 4, 13), "CMYK", quality=90)
    if bottle_png:  # a real photograph, where IDCT rounding shows up
        with Image.open(bottle_png) as im:
            im.convert("RGB").save(os.path.join(d, "bottle.jpg"), "JPEG",
                                   quality=92)
        save_pil_expected(os.path.join(d, "bottle.jpg"))


# ---------------------------------------------------------------- bad files

def make_bad_files(d, decode_dir):
    def write(name, data):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    png = open(os.path.join(decode_dir, "rgb8.png"), "rb").read()
    jpg = open(os.path.join(decode_dir, "rgb420.jpg"), "rb").read()
    write("empty.png", b"")
    write("text.png", b"this is a text file, not an image\n")
    # Offsets: inside the signature, after it, inside IHDR, after IHDR,
    # inside IDAT, before IEND, inside IEND's CRC.
    for off in (4, 8, 20, 33, 60, len(png) // 2, len(png) - 12, len(png) - 1):
        write(f"trunc_{off}.png", png[:off])
    # Offsets: magic only, inside the headers, inside the scan, no EOI.
    for off in (2, 3, 20, 200, len(jpg) // 2, len(jpg) - 2):
        write(f"trunc_{off}.jpg", jpg[:off])
    with open(os.path.join(d, "truncated_list.txt"), "w") as f:
        for off in (4, 8, 20, 33, 60, len(png) // 2, len(png) - 12,
                    len(png) - 1):
            f.write(f"trunc_{off}.png\n")
        for off in (2, 3, 20, 200, len(jpg) // 2, len(jpg) - 2):
            f.write(f"trunc_{off}.jpg\n")

    # Intact data, wrong CRC on the (only) IDAT chunk.
    idat = png.index(b"IDAT") + 4
    length = struct.unpack(">I", png[idat - 8: idat - 4])[0]
    bad = bytearray(png)
    bad[idat + length] ^= 0x55
    write("corrupt_crc.png", bytes(bad))
    # A flipped data byte: zlib or the CRC check, whichever comes first.
    bad = bytearray(png)
    bad[idat + 10] ^= 0x55
    write("corrupt_idat.png", bytes(bad))
    # A tEXt chunk with a bad CRC: libpng warns and skips it (PIL would
    # refuse the file); the pixels are intact, so this must decode.
    ihdr_end = 8 + 8 + 13 + 4
    text = bytearray(chunk(b"tEXt", b"Comment\0damaged metadata"))
    text[-1] ^= 0xFF
    write("ancillary_crc.png", png[:ihdr_end] + bytes(text) + png[ihdr_end:])
    # Garbage deflate data with a correct CRC: only zlib can notice.
    garbage = bytearray(png)
    garbage[idat + 2: idat + length] = bytes((i * 37 + 11) & 0xFF
                                             for i in range(length - 2))
    body = bytes(garbage[idat - 4: idat + length])
    garbage[idat + length: idat + length + 4] = struct.pack(
        ">I", zlib.crc32(body) & 0xFFFFFFFF)
    write("bad_zlib.png", bytes(garbage))

    sig = b"\x89PNG\r\n\x1a\n"
    tiny_idat = chunk(b"IDAT", zlib.compress(b"\0" * 16))
    write("huge_ihdr.png", sig + chunk(b"IHDR", struct.pack(
        ">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + tiny_idat +
        chunk(b"IEND", b""))
    write("bad_depth.png", sig + chunk(b"IHDR", struct.pack(
        ">IIBBBBB", 8, 8, 3, 2, 0, 0, 0)) + tiny_idat + chunk(b"IEND", b""))

    # JPEG whose SOF0 claims 60000 x 60000 pixels.
    sof = jpg.index(b"\xff\xc0")
    huge = bytearray(jpg)
    huge[sof + 5: sof + 9] = struct.pack(">HH", 60000, 60000)
    write("huge_sof.jpg", bytes(huge))
    rng = np.random.default_rng(14)
    write("garbage.jpg", b"\xff\xd8\xff" + rng.bytes(500))


# ------------------------------------------------------------------- resize

def pil_resize(arr, mode, w, h):
    return np.asarray(Image.fromarray(arr, mode).resize((w, h), Image.Resampling.BILINEAR))


def make_resize(d, decode_dir):
    sources = {
        "rgb97x61": (picture(97, 61, 3, 20), "RGB"),
        "gray53x71": (picture(53, 71, 1, 21), "L"),
        "noise300x200": (np.random.default_rng(22).integers(
            0, 256, size=(200, 300, 3), dtype=np.uint8), "RGB"),
        "one_pixel": (np.array([[[200, 100, 7]]], np.uint8), "RGB"),
        "strip": (np.asarray(Image.open(os.path.join(decode_dir, "strip.png"))
                             .convert("RGB")), "RGB"),
    }
    sizes = {
        "rgb97x61": [(50, 30), (200, 150), (33, 47), (97, 20), (40, 61),
                     (97, 61), (1, 1), (256, 256), (13, 200), (96, 60),
                     (291, 183), (98, 62), (3, 61)],
        "gray53x71": [(26, 35), (100, 100), (7, 3), (53, 1), (1, 71)],
        "noise300x200": [(256, 171), (224, 224), (17, 11), (301, 199)],
        "one_pixel": [(5, 7)],
        "strip": [(100, 3)],
    }
    lines = []
    for name, (arr, mode) in sources.items():
        h, w = arr.shape[:2]
        ch = 1 if arr.ndim == 2 else 3
        src_file = f"{name}.raw"
        with open(os.path.join(d, src_file), "wb") as f:
            f.write(np.ascontiguousarray(arr).tobytes())
        for ow, oh in sizes[name]:
            out_file = f"{name}_to_{ow}x{oh}.raw"
            with open(os.path.join(d, out_file), "wb") as f:
                f.write(pil_resize(arr, mode, ow, oh).tobytes())
            lines.append(f"{src_file} {w} {h} {ch} {ow} {oh} {out_file}")
    with open(os.path.join(d, "resize_cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


# --------------------------------------------------------------- preprocess

def torchvision_preprocess(img, resize_short, crop_w, crop_h, mean, std):
    steps = []
    if resize_short:
        steps.append(T.Resize(resize_short))
    if crop_w:
        steps.append(T.CenterCrop((crop_h, crop_w)))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)(img.convert("RGB")).numpy().astype("<f4")


def py_round(x):
    return int(round(x))  # Python 3 rounds halves to even, as torchvision


def expected_geometry(w, h, resize_short, crop_w, crop_h):
    """torchvision's sizes, written out independently of the C code."""
    rw, rh = w, h
    if resize_short:
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(resize_short * long / short)
        rw, rh = (resize_short, new_long) if w <= h else (new_long, resize_short)
    ow, oh = (crop_w or rw), (crop_h or rh)

    def start(size, crop):
        if crop > size:
            return -((crop - size) // 2)
        return py_round((size - crop) / 2.0)

    return rw, rh, start(rw, ow), start(rh, oh), ow, oh


def make_preprocess(d):
    custom = ((0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    imagenet = (IMAGENET_MEAN, IMAGENET_STD)
    cases = [  # (source w, h, mode, resize_short, crop_w, crop_h, mean/std)
        (640, 480, "RGB", 256, 224, 224, imagenet),  # 341x256, left 58.5->58
        (300, 200, "RGB", 256, 224, 224, imagenet),
        (259, 300, "RGB", 0, 224, 224, imagenet),    # left 17.5 -> 18
        (257, 250, "RGB", 0, 224, 224, imagenet),    # left 16.5 -> 16
        (100, 80, "RGB", 0, 224, 224, imagenet),     # padded on all sides
        (300, 100, "RGB", 0, 224, 224, imagenet),    # padded top/bottom only
        (640, 480, "RGB", 200, 150, 190, custom),    # non-square crop
        (120, 90, "L", 64, 56, 56, imagenet),        # gray replicated
        (300, 200, "RGB", 128, 0, 0, imagenet),      # no crop
        (7, 3, "RGB", 0, 0, 0, imagenet),            # neither
        (256, 300, "RGB", 256, 224, 224, imagenet),  # already 256 short
        (640, 480, "RGB", 100, 224, 224, imagenet),  # crop > resized
        (480, 640, "RGB", 256, 224, 224, imagenet),  # portrait
    ]
    lines = []
    for i, (w, h, mode, rs, cw, ch, (mean, std)) in enumerate(cases):
        arr = picture(w, h, 1 if mode == "L" else 3, 30 + i)
        src = f"pp{i}_{w}x{h}.png"
        Image.fromarray(arr, mode).save(os.path.join(d, src))
        with Image.open(os.path.join(d, src)) as im:
            tensor = torchvision_preprocess(im, rs, cw, ch, mean, std)
        geom = expected_geometry(w, h, rs, cw, ch)
        assert tensor.shape == (3, geom[5], geom[4]), (tensor.shape, geom)
        out = f"pp{i}.f32"
        tensor.tofile(os.path.join(d, out))
        nums = " ".join(repr(float(x)) for x in mean + std)
        kind = "gray" if mode == "L" else "rgb"
        lines.append(f"{src} {kind} {rs} {cw} {ch} {nums} "
                     + " ".join(str(g) for g in geom) + f" {out}")
    with open(os.path.join(d, "preprocess_cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------- bottle

BOTTLE_IMAGES = ["train/good/000.png", "train/good/001.png",
                 "train/good/104.png", "train/good/208.png",
                 "test/good/000.png", "test/broken_large/000.png",
                 "test/contamination/005.png"]
BOTTLE_MASK = "ground_truth/broken_large/000_mask.png"


def make_bottle(d, bottle_dir):
    lines = []
    for i, rel in enumerate(BOTTLE_IMAGES):
        with Image.open(os.path.join(bottle_dir, rel)) as im:
            rgb = im.convert("RGB")
        np.asarray(rgb).tofile(os.path.join(d, f"b{i}.rgb"))
        np.asarray(rgb.resize((256, 256), Image.Resampling.BILINEAR)).tofile(
            os.path.join(d, f"b{i}_256.rgb"))
        torchvision_preprocess(rgb, 256, 224, 224, IMAGENET_MEAN,
                               IMAGENET_STD).tofile(os.path.join(d, f"b{i}.f32"))
        lines.append(f"{rel} {rgb.width} {rgb.height} b{i}.rgb b{i}_256.rgb "
                     f"b{i}.f32")
    with Image.open(os.path.join(bottle_dir, BOTTLE_MASK)) as im:
        mask = im.convert("L")
    np.asarray(mask).tofile(os.path.join(d, "mask.gray"))
    with open(os.path.join(d, "bottle_cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(d, "mask_case.txt"), "w") as f:
        f.write(f"{BOTTLE_MASK} {mask.width} {mask.height} mask.gray\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--nominal", help="unused: the image tests need no CLI")
    args = ap.parse_args()

    dirs = {k: os.path.join(args.out, k)
            for k in ("decode", "bad", "resize", "preprocess", "bottle")}
    for p in dirs.values():
        os.makedirs(p, exist_ok=True)
    bottle_dir = os.path.join(args.shared, "data", "mvtec_ad", "bottle")
    have_bottle = os.path.isfile(os.path.join(bottle_dir, BOTTLE_IMAGES[0]))
    if not have_bottle:
        print(f"gen_image: {bottle_dir} not found; bottle fixtures skipped",
              file=sys.stderr)
    if torch is None:
        sys.exit("gen_image: python3-torch/torchvision missing")

    make_decode_pngs(dirs["decode"])
    make_decode_jpegs(dirs["decode"], os.path.join(bottle_dir, BOTTLE_IMAGES[0])
                      if have_bottle else None)
    make_bad_files(dirs["bad"], dirs["decode"])
    make_resize(dirs["resize"], dirs["decode"])
    make_preprocess(dirs["preprocess"])
    if have_bottle:
        make_bottle(dirs["bottle"], bottle_dir)


if __name__ == "__main__":
    main()
