"""Image -> model input tensor, as pure functions.

Pipeline (Preprocessor.__call__): decode with Pillow (EXIF orientation applied, first frame of
animations) -> 8-bit 'L' or 'RGB' as the model's channel count asks -> resize to the model's H x W
(aspect ratio not kept: TFLite apps stretch too) -> per-pixel map into the input tensor's dtype.

Mode rules (documented because each is a choice):
- 16-bit grayscale ('I;16*', and 'I', which Pillow uses for 16-bit PNGs on some versions) keeps the
  high byte (v >> 8, i.e. divided by 256): Pillow's own convert('L') would clip everything above 255.
- Transparent images (RGBA, LA, PA, P/L/RGB with a transparency key) are composited onto
  `background` (black by default: MNIST digits are light strokes on black; opaque photos are unchanged).
- '1' becomes 0/255; P, CMYK, YCbCr, LAB, HSV go through Pillow's RGB conversion; RGB -> L uses
  Pillow's ITU-R 601-2 luma (exact for gray pixels). Floating-point images ('F') are refused: their
  range is not defined.

The map from an 8-bit pixel x (channel c) to the input value (Spec.kind):
- "raw":      the pixel itself. uint8 input: x. int8 input: x - 128 (int8="shift") or the byte
              reinterpreted as int8 (int8="reinterpret", what TFLite Micro's person_detection test
              feeds: 128..255 wrap to -128..-1). float input: float(x).
- "scale":    x / 255, then quantized with the input's scale and zero point.
- "mean_std": (x - mean[c]) / std[c], then quantized.
Normalization is computed in float32, quantization rounds half away from zero and saturates
(TensorInfo.quantize). Pixels are 8-bit, so the whole map is a 256-entry table per channel, built
once; when the table equals the raw map (e.g. MNIST's x/255 with scale 1/255), the raw path runs
instead (no gather). For the SSD, mean_std 127.5/127.5 is NOT the raw map: it gives raw+1 for
x >= 128; TFLite apps (and the registry) feed raw pixels.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ImageError, InputError
from .model import TensorInfo

if TYPE_CHECKING:
    from PIL import Image

# Pillow is imported where an image is read, not with this module: loading a model validates its
# preprocessing (the registry) and needs none of Pillow's 20-25 ms of imports
RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")  # Pillow's Resampling names
KINDS = ("raw", "scale", "mean_std")
INT8_MODES = ("shift", "reinterpret")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@dataclass(frozen=True)
class Spec:
    """How pixels become the input tensor. Built from a registry entry's "preprocess" object."""

    kind: str = "raw"
    resize: str = "bilinear"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    int8: str = "shift"
    background: tuple[int, int, int] = (0, 0, 0)
    letterbox: int | None = None  # gray value: resize keeping the aspect ratio, pad with it (YOLO)
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"preprocess kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.resize not in RESAMPLE:
            raise InputError(f"resize method {self.resize!r}: expected one of {', '.join(RESAMPLE)}")
        if self.int8 not in INT8_MODES:
            raise InputError(f"int8 mode {self.int8!r}: expected one of {', '.join(INT8_MODES)}")
        if not self.std or any(not np.isfinite(s) or s == 0 for s in self.std):
            raise InputError(f"std {self.std}: must be finite and non-zero")
        if not self.mean or any(not np.isfinite(m) for m in self.mean):
            raise InputError(f"mean {self.mean}: must be finite")
        if len(self.background) != 3 or any(not 0 <= int(b) <= 255 for b in self.background):
            raise InputError(f"background {self.background}: expected three values in 0..255")
        if self.letterbox is not None and not 0 <= self.letterbox <= 255:
            raise InputError(f"letterbox {self.letterbox}: expected a gray value in 0..255")

    @classmethod
    def from_dict(cls, d: dict | None) -> Spec:
        d = dict(d or {})
        unknown = set(d) - {"kind", "resize", "mean", "std", "int8", "background", "letterbox"}
        if unknown:
            raise InputError(f"preprocess spec: unknown key(s) {sorted(unknown)}")

        def floats(v):
            return tuple(float(x) for x in (v if isinstance(v, (list, tuple)) else [v]))

        kw = {k: d[k] for k in ("kind", "resize", "int8") if k in d}
        if "mean" in d:
            kw["mean"] = floats(d["mean"])
        if "std" in d:
            kw["std"] = floats(d["std"])
        if "background" in d:
            kw["background"] = tuple(int(x) for x in d["background"])
        if d.get("letterbox") is not None:
            kw["letterbox"] = int(d["letterbox"])
        return cls(**kw)

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "resize": self.resize}
        if self.kind == "mean_std":
            d["mean"], d["std"] = list(self.mean), list(self.std)
        if self.int8 != "shift":
            d["int8"] = self.int8
        if self.background != (0, 0, 0):
            d["background"] = list(self.background)
        if self.letterbox is not None:
            d["letterbox"] = self.letterbox
        return d


# ---------------------------------------------------------------- decoding


def _describe(src) -> str:
    return str(src) if isinstance(src, (str, os.PathLike)) else f"<{type(src).__name__}>"


# the raster formats the engine reads; Pillow's others include EPS/PS, which it hands to Ghostscript
# (a program run on a file the user may not have made), and rarely used codecs with a larger attack surface
# PPM also reads PGM and PBM; JPEG also yields MPO, the multi-picture JPEG of phone cameras
FORMATS = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP", "PPM")


def open_image(src) -> Image.Image:
    """Decode a path, bytes, PIL image or uint8/uint16/bool array into a fully loaded PIL image.

    Only the FORMATS are opened, whatever the file's name. EXIF orientation is applied. Every
    failure (missing, empty, not an image, another format, truncated, a decompression bomb) raises
    ImageError naming the source.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(src, np.ndarray):
        return _from_array(src)
    name = _describe(src)
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse both
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            if isinstance(src, Image.Image):
                img = src
                if img.format is not None and img.format not in (*FORMATS, "MPO"):
                    raise ImageError(f"{name}: {img.format} images are not read ({', '.join(FORMATS)} are)")
                img.load()
                return ImageOps.exif_transpose(img)
            if isinstance(src, (bytes, bytearray, memoryview)):
                fp = io.BytesIO(bytes(src))
                if not len(fp.getbuffer()):
                    raise ImageError(f"{name}: empty image data")
            else:
                path = Path(src)
                if path.is_dir():
                    raise ImageError(f"{path}: is a folder, not an image")
                if path.is_file() and path.stat().st_size == 0:
                    raise ImageError(f"{path}: empty file")
                fp = path
            with Image.open(fp, formats=FORMATS) as im:
                im.seek(0)  # first frame of an animation / multi-page file
                im.load()
                return ImageOps.exif_transpose(im)  # a loaded copy, so the file can close
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"{name}: image too large (decompression bomb check): {e}") from None
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except PermissionError:
            raise ImageError(f"{name}: permission denied") from None
        except UnidentifiedImageError:
            formats = ", ".join(FORMATS)
            raise ImageError(f"{name}: not an image in a format the engine reads ({formats})") from None
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, MemoryError) as e:
            raise ImageError(f"{name}: cannot decode image ({type(e).__name__}: {e})") from None
        except subprocess.SubprocessError as e:  # a plugin's helper program; never expected, never raw
            raise ImageError(f"{name}: cannot decode image ({type(e).__name__}: {e})") from None


def _from_array(a: np.ndarray) -> Image.Image:
    from PIL import Image

    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or 0 in a.shape:
        raise ImageError(f"array of shape {list(a.shape)}: expected H x W, H x W x 1, 3 or 4")
    if a.dtype == np.bool_:
        return Image.fromarray(a.astype(np.uint8) * 255, "L")
    if a.dtype == np.uint16:
        if a.ndim != 2:
            raise ImageError("16-bit arrays must be grayscale (H x W)")
        return Image.fromarray((a >> 8).astype(np.uint8), "L")
    if a.dtype != np.uint8:
        raise ImageError(f"array of dtype {a.dtype}: pass uint8 pixels (0..255); float ranges are ambiguous")
    mode = "L" if a.ndim == 2 else ("RGB" if a.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(a), mode)


def to_8bit(img: Image.Image, channels: int, background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Any Pillow mode -> 'L' (channels 1) or 'RGB' (channels 3), rules in the module docstring."""
    from PIL import Image

    if channels not in (1, 3):
        raise InputError(f"images have 1 or 3 channels; the model input wants {channels}")
    mode = img.mode
    if mode in _SIXTEEN_BIT:
        a = np.asarray(img).astype(np.int64)
        img = Image.fromarray((np.clip(a, 0, 65535) >> 8).astype(np.uint8), "L")
    elif mode == "F":
        raise ImageError("floating-point images (mode F) are not supported: convert them to 8 or 16 bit")
    elif mode == "1":
        img = img.convert("L")
    elif img.has_transparency_data:
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (*(int(b) for b in background), 255))
        _warn_if_invisible(rgba, background)
        img = Image.alpha_composite(bg, rgba).convert("RGB")
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    want = "L" if channels == 1 else "RGB"
    return img if img.mode == want else img.convert(want)


def _warn_if_invisible(rgba: Image.Image, background: tuple[int, int, int]) -> None:
    """Dark strokes on a transparent background vanish on black (and light ones on white): say so."""
    a = np.asarray(rgba, np.float32)
    alpha = a[..., 3]
    ink = alpha > 127
    if ink.all() or not ink.any():
        return
    ink_luma = float((a[..., :3][ink] @ np.float32([0.299, 0.587, 0.114])).mean())
    bg_luma = float(np.float32(background) @ np.float32([0.299, 0.587, 0.114]))
    if abs(ink_luma - bg_luma) < 48:
        warnings.warn(
            f"a transparent image whose opaque part (mean gray {ink_luma:.0f}) is close to the background it "
            f"is composited on ({bg_luma:.0f}): the model sees an almost uniform picture; save it without "
            "transparency (e.g. light strokes on black for MNIST)",
            ImageWarning,
            stacklevel=3,
        )


class ImageWarning(UserWarning):
    """An image was read, but probably not as its author meant it."""


def resize(img: Image.Image, size_wh: tuple[int, int], method: str = "bilinear") -> Image.Image:
    if img.size == tuple(size_wh):
        return img
    return img.resize(tuple(size_wh), resample(method))


def resample(method: str):
    """Pillow's Resampling member for one of the RESAMPLE names."""
    from PIL import Image

    return Image.Resampling[method.upper()]


# ---------------------------------------------------------------- pixel map


def _raw_table(dtype: np.dtype, int8_mode: str) -> np.ndarray:
    x = np.arange(256)
    if dtype == np.uint8:
        return x.astype(np.uint8)
    if dtype == np.int8:
        return (x - 128).astype(np.int8) if int8_mode == "shift" else x.astype(np.uint8).view(np.int8)
    if dtype == np.float32:
        return x.astype(np.float32)
    raise InputError(f"image inputs must be uint8, int8 or float32, not {dtype}")


def pixel_table(info: TensorInfo, spec: Spec, channels: int) -> np.ndarray:
    """[channels, 256] table: 8-bit pixel value of each channel -> input tensor value."""
    dtype = np.dtype(info.dtype)
    raw = _raw_table(dtype, spec.int8)
    if spec.kind == "raw":
        return np.tile(raw, (channels, 1))
    x = np.arange(256, dtype=np.float32)
    if spec.kind == "scale":
        v = np.tile(x / np.float32(255), (channels, 1))
    else:
        mean, std = (np.resize(np.asarray(a, np.float32), channels)[:, None] for a in (spec.mean, spec.std))
        if len(spec.mean) not in (1, channels) or len(spec.std) not in (1, channels):
            raise InputError(f"mean/std need 1 or {channels} values: {spec.mean}, {spec.std}")
        v = (x[None, :] - mean) / std
    if dtype == np.float32:
        return v.astype(np.float32)
    if not info.scale > 0:
        raise InputError(
            f"input '{info.name}' is {dtype} without quantization: cannot quantize a normalized image"
        )
    return info.quantize(v)


def is_raw(table: np.ndarray, dtype: np.dtype, int8_mode: str = "shift") -> bool:
    """Whether a pixel table is exactly the raw map (checked over all 256 values of every channel)."""
    try:
        raw = _raw_table(np.dtype(dtype), int8_mode)
    except InputError:
        return False
    return table.dtype == raw.dtype and bool(np.all(table == raw[None, :]))


def apply_table(pixels: np.ndarray, table: np.ndarray, fast: str | None = None) -> np.ndarray:
    """uint8 pixels [..., C] (or [...] when C == 1) -> input values.

    fast: None (gather through the table), "identity" (uint8/float raw), "shift" (x ^ 0x80 as int8) or
    "reinterpret" (the bytes as int8); the caller has checked that it equals the table.
    """
    pixels = np.asarray(pixels, np.uint8)
    if fast == "identity":
        return pixels.astype(table.dtype, copy=False)
    if fast == "shift":
        return (pixels ^ np.uint8(0x80)).view(np.int8)
    if fast == "reinterpret":
        return pixels.view(np.int8)
    if table.shape[0] == 1:
        return table[0][pixels]
    return table[np.arange(table.shape[0]), pixels]


# ---------------------------------------------------------------- the whole pipeline


def image_layout(info: TensorInfo) -> tuple[int, int, int, bool]:
    """(H, W, C, has_channel_axis) of an image input [N, H, W, C] or [N, H, W]."""
    s = tuple(info.shape)
    if len(s) == 4 and s[3] in (1, 3) and s[1] > 0 and s[2] > 0:
        return s[1], s[2], s[3], True
    if len(s) == 3 and s[1] > 0 and s[2] > 0:
        return s[1], s[2], 1, False
    raise InputError(
        f"input '{info.name}' of shape {list(s)} is not an image ([N, H, W, 1 or 3] or [N, H, W])"
    )


class Preprocessor:
    """Built once per model input: the pixel table and its fast path are computed here."""

    def __init__(self, info: TensorInfo, spec: Spec | dict | None = None):
        self.info = info
        self.spec = spec if isinstance(spec, Spec) else Spec.from_dict(spec)
        self.height, self.width, self.channels, self._channel_axis = image_layout(info)
        self.table = pixel_table(info, self.spec, self.channels)
        dtype = np.dtype(info.dtype)
        self.fast = None
        if is_raw(self.table, dtype, self.spec.int8):
            self.fast = self.spec.int8 if dtype == np.int8 else "identity"

    def image(self, src) -> Image.Image:
        """Decoded, oriented, 8-bit image at its original size (what boxes are mapped back to)."""
        return to_8bit(open_image(src), self.channels, self.spec.background)

    def pixels(self, img: Image.Image) -> np.ndarray:
        """An 8-bit image -> resized (or letterboxed) uint8 pixels [H, W, C] (or [H, W])."""
        img = to_8bit(img, self.channels, self.spec.background)
        if self.spec.letterbox is not None:
            from .yolo import letterbox

            img = letterbox(img, (self.width, self.height), self.spec.letterbox, resample(self.spec.resize))
        else:
            img = resize(img, (self.width, self.height), self.spec.resize)
        a = np.asarray(img, np.uint8)
        if self._channel_axis and a.ndim == 2:
            a = a[:, :, None]
        return a

    def tensor(self, img: Image.Image) -> np.ndarray:
        """A decoded image (from image()) -> input tensor without the batch axis."""
        return apply_table(self.pixels(img), self.table, self.fast)

    def __call__(self, src) -> np.ndarray:
        """One image (path, bytes, PIL image, array) -> input tensor without the batch axis."""
        return self.tensor(self.image(src))

    def batch(self, sources) -> np.ndarray:
        """Several images -> [N, ...] input tensor."""
        return np.stack([self(s) for s in sources])


def preprocess(src, info: TensorInfo, spec: Spec | dict | None = None) -> np.ndarray:
    """One image -> input tensor with a batch axis of 1."""
    return Preprocessor(info, spec)(src)[None]
