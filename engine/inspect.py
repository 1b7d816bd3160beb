"""Look inside a quantized model: layers, quantization, fixed-point multipliers, MACs, one element step by step.

    python -m engine.inspect MODEL                      # layer listing (--json for machine-readable)
    python -m engine.inspect MODEL --layer 2 --element 0,5,7,3 [--image P | --input-npy F | --seed S]
    python -m engine.inspect MODEL --compare-litert [--image P | --input-npy F | --seed S]

--element shows, for one output element of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer, the whole
integer computation the reference kernels do (accumulator, bias, fixed-point multiplier, rounding shift,
zero point, clamp) next to a float recomputation; --compare-litert runs LiteRT's reference kernels on the
same input (in a subprocess) and compares every layer's output tensor.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .errors import EngineError, ImageError, InputError, UnsupportedError
from .fixedpoint import (
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)
from .graph import Graph, Op, Tensor
from .interpreter import Interpreter
from .model import Model, load
from .ops.common import conv_padding, fused_activation, per_tensor
from .ops.quant_params import bias_vector, conv_multipliers, filter_zero_points

CONV_LIKE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


# ---- model resolution ----------------------------------------------------------------------------
def resolve_model(spec: str) -> tuple[Model, Path | None]:
    """A path to .tflite/.npz, or a registry name when engine.registry provides one."""
    path = Path(spec)
    if path.exists() or path.suffix in (".tflite", ".npz") or importlib.util.find_spec("engine.registry") is None:
        return load(path), path
    from . import registry  # optional module: name -> local path (downloaded or mirrored)

    for fn in ("path", "get_path", "fetch", "resolve"):
        if hasattr(registry, fn):
            p = Path(getattr(registry, fn)(spec))
            return load(p), p
    return load(path), path


# ---- layer listing -------------------------------------------------------------------------------
def _summary(values: np.ndarray, fmt: str = "{:.6g}") -> str:
    v = np.asarray(values).reshape(-1)
    if v.size == 0:
        return "-"
    if v.size == 1 or np.all(v == v[0]):
        return fmt.format(v[0].item())
    return f"x{v.size} [{fmt.format(v.min().item())} .. {fmt.format(v.max().item())}]"


def _quant_json(values: np.ndarray):
    v = np.asarray(values).reshape(-1)
    if v.size == 1:
        return v[0].item()
    if v.size == 0:
        return None
    return {"count": int(v.size), "min": v.min().item(), "max": v.max().item()}


def tensor_info(g: Graph, i: int, shapes: dict, role: str) -> dict:
    t = g.tensors[i]
    return {
        "role": role,
        "index": i,
        "name": t.name,
        "shape": [int(d) for d in shapes.get(i, t.shape)],
        "dtype": t.dtype,
        "const": t.is_const,
        "scale": _quant_json(t.scale),
        "zero_point": _quant_json(t.zero_point),
        "quantized_dimension": int(t.quant_axis) if t.scale.size > 1 else None,
    }


def _roles(op: Op) -> list[str]:
    if op.type in CONV_LIKE:
        return ["input", "weights", "bias"]
    return [f"input{k}" if len(op.inputs) > 1 else "input" for k in range(len(op.inputs))]


def out_channels(op: Op, g: Graph) -> int:
    filt = g.tensors[op.inputs[1]]
    return int(filt.shape[3] if op.type == "DEPTHWISE_CONV_2D" else filt.shape[0])


def macs(op: Op, g: Graph, shapes: dict) -> int:
    """Multiply-accumulates of one run at the planned batch size (0 for ops that do none)."""
    if op.type not in CONV_LIKE:
        return 0
    out = int(np.prod(shapes[op.outputs[0]], dtype=np.int64))
    fshape = g.tensors[op.inputs[1]].shape
    if op.type == "CONV_2D":
        return out * int(np.prod(fshape[1:]))
    if op.type == "DEPTHWISE_CONV_2D":
        return out * int(fshape[1] * fshape[2])
    return out * int(fshape[1])


def multiplier_info(op: Op, g: Graph) -> dict | None:
    """The effective requantization multiplier M = s_in * s_w / s_out per output channel, and (M0, shift)."""
    if op.type not in CONV_LIKE:
        return None
    inp, filt, out = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if not (inp.quantized and filt.quantized and out.quantized):
        return None
    channels = out_channels(op, g)
    try:
        m0, shift = conv_multipliers(op, inp, filt, out, channels)
    except EngineError as e:
        return {"error": str(e)}
    fs = np.broadcast_to(filt.scale.astype(np.float64), (channels,))
    real = float(inp.scale[0]) * fs / float(out.scale[0])
    rows = sorted({int(np.argmin(real)), int(np.argmax(real))})
    return {
        "channels": channels,
        "M": real.tolist(),
        "M0": m0.tolist(),
        "shift": shift.tolist(),
        "summary_channels": rows,
    }


def layer_rows(model: Model) -> list[dict]:
    g = model.graph
    shapes = model.plan(1).shapes
    rows = []
    for op in g.ops:
        roles = _roles(op)
        rows.append(
            {
                "index": op.index,
                "op": op.type,
                "options": op.options,
                "inputs": [tensor_info(g, i, shapes, r) for i, r in zip(op.inputs, roles) if i >= 0],
                "outputs": [tensor_info(g, i, shapes, "output") for i in op.outputs],
                "multiplier": multiplier_info(op, g),
                "macs": macs(op, g, shapes),
            }
        )
    return rows


def _fmt_tensor(t: dict) -> str:
    q = ""
    if t["scale"] is not None:
        s, z = t["scale"], t["zero_point"]
        if isinstance(s, dict):
            q = f"  per-channel x{s['count']} (axis {t['quantized_dimension']}) scale [{s['min']:.6g} .. {s['max']:.6g}]"
            q += f" zp {z if not isinstance(z, dict) else f'[{z['min']} .. {z['max']}]'}"
        else:
            q = f"  scale {s:.6g} zp {z}"
    const = " const" if t["const"] else ""
    shape = "x".join(str(d) for d in t["shape"]) or "scalar"
    return f"    {t['role']:<8} #{t['index']:<4} {t['dtype']}[{shape}]{const}{q}  '{t['name']}'"


def _fmt_options(options: dict) -> str:
    skip = {"asymmetric_quantize_inputs", "quantized_bias_type", "weights_format"}
    parts = []
    for k, v in options.items():
        if k in skip and not v:
            continue
        if isinstance(v, float):
            v = f"{v:.6g}"
        elif isinstance(v, (list, tuple)) and len(v) > 8:
            v = f"[{len(v)} values]"
        parts.append(f"{k}={v}")
    return " ".join(parts)


def format_listing(model: Model, rows: list[dict]) -> str:
    g = model.graph
    lines = [f"model: {model.source}  ({len(g.ops)} ops, {len(g.tensors)} tensors)"]
    if g.description:
        lines.append(f"description: {g.description}")
    for label, idx in (("inputs", g.inputs), ("outputs", g.outputs)):
        for i in idx:
            t = g.tensors[i]
            q = f" scale {t.scale[0]:.6g} zp {t.zero_point[0]}" if t.scale.size == 1 else ""
            lines.append(f"{label:<8} #{i} '{t.name}' {t.dtype}{list(t.shape)}{q}")
    total = 0
    for r in rows:
        lines.append("")
        lines.append(f"[{r['index']}] {r['op']}  {_fmt_options(r['options'])}".rstrip())
        lines += [_fmt_tensor(t) for t in r["inputs"] + r["outputs"]]
        m = r["multiplier"]
        if m is not None and "error" in m:
            lines.append(f"    multiplier: {m['error']}")
        elif m is not None:
            real = np.array(m["M"])
            lines.append(
                f"    M = s_in*s_w/s_out: {_summary(real)}   as M0 * 2^(shift-31): "
                f"M0 {_summary(np.array(m['M0']), '{}')}, shift {_summary(np.array(m['shift']), '{}')}"
            )
            if m["channels"] > 1 and not np.all(real == real[0]):
                for c in m["summary_channels"]:
                    lines.append(
                        f"      channel {c:>4}: M = {m['M'][c]:.9g}  M0 = {m['M0'][c]}  shift = {m['shift'][c]}"
                        f"  ({'min' if real[c] == real.min() else 'max'} M)"
                    )
        if r["macs"]:
            lines.append(f"    MACs {r['macs']:,}")
        total += r["macs"]
    lines.append("")
    lines.append(f"total MACs: {total:,} ({total / 1e6:.2f} M) per run at batch 1")
    return "\n".join(lines)


# ---- inputs --------------------------------------------------------------------------------------
def _load_image(path: Path, shape: tuple, dtype: np.dtype) -> np.ndarray:
    try:
        from . import preprocess  # the end-to-end preprocessing, when the package provides it
    except ImportError:
        preprocess = None
    if preprocess is not None and hasattr(preprocess, "load_image"):
        try:
            x = np.asarray(preprocess.load_image(path, shape[1:3] if len(shape) == 4 else shape))
            if x.dtype == dtype and x.size == int(np.prod(shape)):
                return x.reshape(shape)
        except TypeError:
            pass  # a different signature: use the plain path below
    from PIL import Image, UnidentifiedImageError

    if len(shape) != 4 or shape[3] not in (1, 3):
        raise InputError(f"--image needs an input of shape [1, H, W, 1 or 3], the model's is {list(shape)}")
    try:
        img = Image.open(path)
        img = img.convert("L" if shape[3] == 1 else "RGB").resize((shape[2], shape[1]), Image.NEAREST)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (OSError, UnidentifiedImageError) as e:
        raise ImageError(f"{path}: cannot read image ({e})") from None
    px = np.asarray(img, np.uint8).reshape(shape)
    if dtype == np.uint8:
        return px
    if dtype == np.int8:
        return (px.astype(np.int16) - 128).astype(np.int8)
    return (px / 255.0).astype(dtype)


def make_inputs(model: Model, image: str | None = None, npy: str | None = None, seed: int | None = None):
    """One array per model input: from an image, a .npy file (single input) or random (seeded)."""
    g = model.graph
    specs = [(g.tensors[i], (max(g.tensors[i].shape[0], 1), *g.tensors[i].shape[1:])) for i in g.inputs]
    if image is not None:
        if len(specs) != 1:
            raise InputError("--image needs a model with exactly one input")
        t, shape = specs[0]
        return [_load_image(Path(image), shape, t.np_dtype)]
    if npy is not None:
        try:
            a = np.load(npy, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{npy}: cannot read .npy ({e})") from None
        arrays = [a] if len(specs) == 1 else None
        if arrays is None:
            raise InputError("--input-npy needs a model with exactly one input")
        t, shape = specs[0]
        if a.shape == shape[1:]:
            a = a[None]
        if a.dtype != t.np_dtype:
            raise InputError(f"{npy}: dtype {a.dtype}, the model's input '{t.name}' is {t.dtype}")
        if a.shape[1:] != shape[1:]:
            raise InputError(f"{npy}: shape {list(a.shape)}, the model's input '{t.name}' is {list(shape)}")
        return [a]
    rng = np.random.default_rng(0 if seed is None else seed)
    out = []
    for t, shape in specs:
        if t.np_dtype.kind in "iu":
            info = np.iinfo(t.np_dtype)
            out.append(rng.integers(info.min, int(info.max) + 1, size=shape).astype(t.np_dtype))
        else:
            out.append(rng.standard_normal(shape).astype(t.np_dtype))
    return out


