"""Image preprocessing: decoding, modes, EXIF, resize, pixel maps (raw / scale / mean_std), errors."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from engine.errors import ImageError, InputError
from engine.model import TensorInfo
from engine.preprocess import (
    Preprocessor,
    Spec,
    apply_table,
    is_raw,
    open_image,
    pixel_table,
    preprocess,
    to_8bit,
)

ALL = np.arange(256, dtype=np.uint8)


def info(shape, dtype="uint8", scale=1 / 255, zp=0) -> TensorInfo:
    # scales are stored as float32 in .tflite files: use the same value the engine reads
    return TensorInfo("input", 0, tuple(shape), np.dtype(dtype), float(np.float32(scale)), zp)


MNIST = info((1, 28, 28, 1), "uint8", 1 / 255, 0)
SSD = info((1, 16, 16, 3), "uint8", 0.0078125, 128)  # the SSD's quantization, small spatial size
PERSON = info((1, 96, 96, 1), "int8", 0.007843137718737125, -1)


def all_values_image(channels: int) -> np.ndarray:
    """16x16 pixels holding every 8-bit value once per channel."""
    a = ALL.reshape(16, 16)
    return a if channels == 1 else np.stack([a, a[::-1], a.T], axis=-1)


def png_bytes(img: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, "PNG", **kw)
    return b.getvalue()


# ---------------------------------------------------------------- pixel maps


def test_ssd_mean_std_is_raw_plus_one_for_every_value_from_128():
    # NOTES.md: (x - 127.5) / 127.5 quantized with scale 1/128, zero point 128 gives x + 1 for x >= 128
    table = pixel_table(SSD, Spec(kind="mean_std", mean=(127.5,), std=(127.5,)), 3)
    assert table.dtype == np.uint8 and table.shape == (3, 256)
    for row in table:
        assert np.array_equal(row[:128], ALL[:128])
        assert np.array_equal(row[128:255], ALL[128:255] + 1)
        assert row[255] == 255  # 256 saturates
    assert np.count_nonzero(table[0] != ALL) == 127
    assert not is_raw(table, np.uint8)


def test_ssd_both_paths_through_the_pipeline():
    x = all_values_image(3)
    raw = Preprocessor(SSD, {"kind": "raw", "resize": "nearest"})
    norm = Preprocessor(SSD, {"kind": "mean_std", "mean": 127.5, "std": 127.5, "resize": "nearest"})
    assert raw.fast == "identity" and norm.fast is None
    got_raw, got_norm = raw(x), norm(x)
    assert np.array_equal(got_raw, x)
    want = np.where(x >= 128, np.minimum(x.astype(int) + 1, 255), x).astype(np.uint8)
    assert np.array_equal(got_norm, want)


def test_mnist_scale_is_the_identity_and_takes_the_fast_path():
    # NOTES.md: x / 255 quantized with scale 1/255, zero point 0 is exactly x for all 256 values
    table = pixel_table(MNIST, Spec(kind="scale"), 1)
    assert np.array_equal(table[0], ALL)
    pre = Preprocessor(info((1, 16, 16, 1)), {"kind": "scale"})
    assert pre.fast == "identity"
    out = pre(all_values_image(1))
    assert out.dtype == np.uint8 and out.shape == (16, 16, 1)
    assert np.array_equal(out[:, :, 0], all_values_image(1))


def test_near_identity_is_not_taken_for_the_identity():
    # a scale a hair off 1/255 changes the map for some values: every value is checked
    off = info((1, 16, 16, 1), "uint8", 1 / 254.0, 0)
    table = pixel_table(off, Spec(kind="scale"), 1)
    assert not np.array_equal(table[0], ALL)
    pre = Preprocessor(off, {"kind": "scale"})
    assert pre.fast is None
    assert np.array_equal(pre(all_values_image(1))[:, :, 0], table[0][all_values_image(1)])


def test_int8_raw_shift_and_reinterpret():
    shift = pixel_table(PERSON, Spec(kind="raw"), 1)[0]
    assert np.array_equal(shift, (ALL.astype(int) - 128).astype(np.int8))
    reinterp = pixel_table(PERSON, Spec(kind="raw", int8="reinterpret"), 1)[0]
    assert np.array_equal(reinterp[:128], np.arange(128)) and np.array_equal(
        reinterp[128:], np.arange(-128, 0)
    )
    x = all_values_image(1)
    assert np.array_equal(apply_table(x, shift[None], "shift"), shift[x])
    assert np.array_equal(apply_table(x, reinterp[None], "reinterpret"), reinterp[x])
    # x / 255 into an int8 input with scale 1/255, zero point -128 is the shift: fast path
    pre = Preprocessor(info((1, 16, 16, 1), "int8", 1 / 255, -128), {"kind": "scale"})
    assert pre.fast == "shift"
    assert np.array_equal(pre(x)[:, :, 0], shift[x])


def test_person_bmp_reinterpreted_gives_tflite_micro_bytes(shared):
    # TFLite Micro's test feeds the BMP bytes viewed as int8
    path = shared / "data/person/person.bmp"
    pre = Preprocessor(PERSON, {"kind": "raw", "int8": "reinterpret"})
    got = pre(path)
    want = np.frombuffer(Image.open(path).tobytes(), np.uint8).view(np.int8).reshape(96, 96, 1)
    assert got.dtype == np.int8 and np.array_equal(got, want)


def test_mean_std_per_channel():
    spec = Spec(kind="mean_std", mean=(0.0, 127.5, 255.0), std=(255.0, 127.5, 1.0))
    t = info((1, 4, 4, 3), "float32", 0.0, 0)
    table = pixel_table(t, spec, 3)
    assert table.dtype == np.float32
    x = ALL.astype(np.float32)
    assert np.array_equal(table[0], x / np.float32(255))
    assert np.array_equal(table[1], (x - np.float32(127.5)) / np.float32(127.5))
    assert np.array_equal(table[2], x - np.float32(255))
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30
    out = Preprocessor(t, spec)(img)
    assert np.array_equal(out[0, 0], [table[0][10], table[1][20], table[2][30]])


def test_float_input_raw_is_pixel_values():
    t = info((1, 16, 16, 1), "float32", 0.0, 0)
    pre = Preprocessor(t, {"kind": "raw"})
    assert pre.fast == "identity"
    assert np.array_equal(pre(all_values_image(1))[:, :, 0], all_values_image(1).astype(np.float32))


def test_spec_validation():
    with pytest.raises(InputError, match="kind"):
        Spec(kind="imagenet")
    with pytest.raises(InputError, match="resize"):
        Spec(resize="magic")
    with pytest.raises(InputError, match="std"):
        Spec(kind="mean_std", std=(0.0,))
    with pytest.raises(InputError, match="unknown key"):
        Spec.from_dict({"kind": "raw", "colour": "RGB"})
    with pytest.raises(InputError, match="mean/std"):
        pixel_table(SSD, Spec(kind="mean_std", mean=(1.0, 2.0), std=(1.0,)), 3)
    assert Spec.from_dict(Spec(kind="mean_std", mean=(1.0,), std=(2.0,)).to_dict()) == Spec(
        kind="mean_std", mean=(1.0,), std=(2.0,)
    )


def test_non_image_inputs_are_refused():
    with pytest.raises(InputError, match="not an image"):
        Preprocessor(info((1, 1960), "int8", 0.1, -128))
    with pytest.raises(InputError, match="not an image"):
        Preprocessor(info((1, 8, 8, 2)))


# ---------------------------------------------------------------- modes


def test_gray_into_rgb_model_replicates_and_rgb_into_gray_uses_luma():
    gray = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    out = Preprocessor(SSD, {"resize": "nearest"})(gray)
    assert np.array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = Preprocessor(info((1, 16, 16, 1)))(rgb)
    assert np.array_equal(out[:, :, 0], np.asarray(Image.fromarray(rgb).convert("L")))
    # gray pixels stay exactly gray through RGB -> L
    grey_rgb = np.repeat(gray[..., None], 3, axis=2)
    assert np.array_equal(Preprocessor(info((1, 16, 16, 1)))(grey_rgb)[:, :, 0], gray)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_gray_keeps_the_high_byte(fmt):
    a = np.array([[0, 255, 256, 0x1234, 0x80FF, 65535]], np.uint16)
    b = io.BytesIO()
    Image.fromarray(a).save(b, fmt)
    img = open_image(b.getvalue())
    assert img.mode.startswith("I")
    got = np.asarray(to_8bit(img, 1))
    assert np.array_equal(got, [[0, 0, 1, 0x12, 0x80, 255]])  # divided by 256, not clipped at 255
    # mode 'I' (32-bit; 16-bit PNGs on some Pillow versions) follows the same rule
    got_i = np.asarray(to_8bit(Image.fromarray(a.astype(np.int32), "I"), 1))
    assert np.array_equal(got_i, [[0, 0, 1, 0x12, 0x80, 255]])


def test_alpha_is_composited_on_the_background():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 0)  # transparent -> background
    rgba[0, 1] = (200, 100, 50, 255)  # opaque -> itself
    rgba[0, 2] = (200, 100, 50, 128)  # half -> between
    img = Image.fromarray(rgba, "RGBA")
    black = np.asarray(to_8bit(img, 3))
    assert black[0, 0].tolist() == [0, 0, 0] and black[0, 1].tolist() == [200, 100, 50]
    assert all(abs(int(v) - w) <= 1 for v, w in zip(black[0, 2], (100, 50, 25)))
    white = np.asarray(to_8bit(img, 3, background=(255, 255, 255)))
    assert white[0, 0].tolist() == [255, 255, 255] and white[0, 1].tolist() == [200, 100, 50]
    # LA and PA too
    la = Image.fromarray(np.array([[[90, 0], [90, 255]]], np.uint8), "LA")
    assert np.asarray(to_8bit(la, 1)).tolist() == [[0, 90]]
    pa = Image.new("PA", (2, 1))
    pa.putpalette([0, 0, 0, 60, 60, 60])
    pa.putpixel((0, 0), (1, 0))
    pa.putpixel((1, 0), (1, 255))
    assert np.asarray(to_8bit(pa, 1)).tolist() == [[0, 60]]


def test_palette_with_and_without_transparency():
    p = Image.new("P", (3, 1))
    p.putpalette([0, 0, 0, 255, 0, 0, 10, 20, 30])
    for i in range(3):
        p.putpixel((i, 0), i)
    assert np.asarray(to_8bit(p, 3)).tolist() == [[[0, 0, 0], [255, 0, 0], [10, 20, 30]]]
    decoded = open_image(png_bytes(p, transparency=1))
    assert decoded.mode == "P" and decoded.has_transparency_data
    assert np.asarray(to_8bit(decoded, 3)).tolist() == [[[0, 0, 0], [0, 0, 0], [10, 20, 30]]]


def test_bilevel_cmyk_and_float_modes():
    one = Image.fromarray(np.array([[0, 1, 1]], bool))
    assert one.mode == "1" and np.asarray(to_8bit(one, 1)).tolist() == [[0, 255, 255]]
    cmyk = Image.new("CMYK", (1, 1), (255, 0, 0, 0))
    assert np.asarray(to_8bit(cmyk, 3)).tolist() == [[[0, 255, 255]]]
    with pytest.raises(ImageError, match="mode F"):
        to_8bit(Image.new("F", (2, 2)), 1)


def test_arrays_of_other_dtypes():
    with pytest.raises(ImageError, match="float"):
        open_image(np.zeros((4, 4), np.float32))
    with pytest.raises(ImageError, match="shape"):
        open_image(np.zeros((4, 4, 2), np.uint8))
    assert np.asarray(open_image(np.array([[0, 0x1234]], np.uint16))).tolist() == [[0, 0x12]]


# ---------------------------------------------------------------- EXIF, resize, frames


def test_exif_orientation_is_applied(tmp_path):
    # 32 wide x 16 high, left half black, right half white; orientation 6 = rotate 90 degrees clockwise
    a = np.zeros((16, 32), np.uint8)
    a[:, 16:] = 255
    img = Image.fromarray(a).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    img.save(path, quality=95, exif=exif)
    out = open_image(path)
    assert out.size == (16, 32)  # width and height swapped
    g = np.asarray(out.convert("L")).astype(int)
    assert g[:12].mean() < 30 and g[20:].mean() > 225  # the black half is now on top
    pre = Preprocessor(info((1, 32, 16, 1)), {"resize": "nearest"})
    assert pre(path).shape == (32, 16, 1)


def test_resize_methods_and_stretch():
    rng = np.random.default_rng(2)
    src = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for method, resample in (
        ("nearest", Image.NEAREST),
        ("bilinear", Image.BILINEAR),
        ("lanczos", Image.LANCZOS),
    ):
        pre = Preprocessor(info((1, 30, 20, 3)), {"resize": method})
        out = pre(src)
        assert out.shape == (30, 20, 3)  # aspect ratio is not kept
        assert np.array_equal(out, np.asarray(Image.fromarray(src).resize((20, 30), resample)))


def test_ssd_table_matches_notes_recipe(shared):
    # NOTES.md: table.jpg -> RGB -> 300x300 NEAREST -> raw pixels
    path = shared / "data/ssd/table.jpg"
    pre = Preprocessor(info((1, 300, 300, 3), "uint8", 0.0078125, 128), {"kind": "raw", "resize": "nearest"})
    want = np.asarray(Image.open(path).convert("RGB").resize((300, 300), Image.NEAREST))
    assert np.array_equal(pre(path), want)
    assert pre.image(path).size == (640, 480)


def test_first_frame_of_an_animation():
    frames = [Image.new("L", (4, 4), v) for v in (10, 200)]
    b = io.BytesIO()
    frames[0].save(b, "GIF", save_all=True, append_images=frames[1:])
    out = open_image(b.getvalue())
    assert np.asarray(out.convert("L")).max() == 10


def test_preprocess_adds_the_batch_axis():
    x = preprocess(np.zeros((28, 28), np.uint8), MNIST, {"kind": "raw"})
    assert x.shape == (1, 28, 28, 1) and x.dtype == np.uint8
    batch = Preprocessor(MNIST).batch([np.zeros((28, 28), np.uint8), np.full((14, 14), 255, np.uint8)])
    assert batch.shape == (2, 28, 28, 1) and batch[1].min() == 255


# ---------------------------------------------------------------- errors


def test_missing_empty_folder_and_non_image_files(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.png: no such file"):
        open_image(tmp_path / "nope.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: empty file"):
        open_image(tmp_path / "empty.jpg")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageError, match=r"notes\.png: not an image"):
        open_image(tmp_path / "notes.png")
    with pytest.raises(ImageError, match="is a folder"):
        open_image(tmp_path)
    with pytest.raises(ImageError, match="empty image data"):
        open_image(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(tmp_path, fmt):
    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    b = io.BytesIO()
    img.save(b, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(b.getvalue()[: len(b.getvalue()) // 2])
    with pytest.raises(ImageError, match=str(path.name)):
        open_image(path)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_an_image_error(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))  # 10^10 pixels claimed by a 60-byte file
    with pytest.raises(ImageError, match="bomb.png: image too large"):
        open_image(path)


def test_decompression_bomb_warning_range_is_an_error_too(monkeypatch, tmp_path):
    # between MAX_IMAGE_PIXELS and twice that Pillow only warns: the engine refuses
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "big.png"
    Image.new("L", (40, 40)).save(path)  # 1600 pixels: in the warning range
    with pytest.raises(ImageError, match="too large"):
        open_image(path)
    Image.new("L", (30, 30)).save(path)  # 900 pixels: fine
    assert open_image(path).size == (30, 30)
