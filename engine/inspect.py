"""Look inside a quantized model: layers, quantization, fixed-point multipliers, MACs, one element step by step.

    python -m engine.inspect MODEL                      # layer listing (--json for machine-readable)
    python -m engine.inspect MODEL --layer 2 --element 0,5,7,3 [--image P | --input-npy F | --seed S]
    python -m engine.inspect MODEL --compare-litert [--image P | --input-npy F | --seed S]

--element shows, for one output element of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer, the whole
integer computation the reference kernels do (accumulator, bias, fixed-point multiplier, rounding shift,
zero point, clamp) next to a float recomputation. LiteRT's reference FULLY_CONNECTED rescales in double
(std::round(double(acc) * s_in*s_w/s_out)) rather than with the fixed-point multiplier; for it the tool
also shows what TFLite Micro's fixed-point path gives and flags an element where the two differ.
--compare-litert runs LiteRT's reference kernels on the same input (in a subprocess) and compares every
layer's output tensor.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import profiles
from .errors import EngineError, InputError
from .graph import Graph, Op, Tensor
from .inspect_litert import litert_steps
from .interpreter import Interpreter
from .kernels import conv as conv_kernels
from .model import Model, load
from .numerics.fixedpoint import (
    multiply_by_quantized_multiplier,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)
from .ops import kernel_for
from .ops.common import fused_activation, per_tensor, window
from .ops.quant_params import bias_vector, conv_multipliers, filter_zero_points
from .profiles import litert_xnn, tflm
from .stats import op_macs

CONV_LIKE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


# ---- model resolution ----------------------------------------------------------------------------
def resolve_model(spec: str, numerics: str = profiles.DEFAULT) -> tuple[Model, Path, dict | None]:
    """(model, its file, the registry's preprocess spec) for a .tflite/.npz path or a registry name."""
    if spec.lower().endswith((".tflite", ".npz")) or "/" in spec or os.sep in spec or Path(spec).is_file():
        return load(spec, numerics=numerics), Path(spec), None
    from . import registry

    reg = registry.Registry.load()
    entry = reg.model(spec)
    path = registry.Cache(registry=reg).path(entry.file)  # cache, mirror, then download (sha256 checked)
    return load(path, numerics=numerics), path, entry.preprocess


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


def requantizes_in_double(op: Op) -> bool:
    """LiteRT's reference FULLY_CONNECTED rounds double(acc) * M; TFLite Micro (and the convs) use (M0, shift)."""
    return op.type == "FULLY_CONNECTED"


def multiplier_info(op: Op, g: Graph) -> dict | None:
    """The effective requantization multiplier M = s_in * s_w / s_out (double) per output channel, and the
    (M0, shift) of the fixed-point path: the reference's for the convolutions, TFLite Micro's for
    FULLY_CONNECTED (whose reference kernel rescales by M in double)."""
    if op.type not in CONV_LIKE:
        return None
    inp, filt, out = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if not (inp.quantized and filt.quantized and out.quantized):
        return None
    channels = out_channels(op, g)
    try:
        if op.type == "FULLY_CONNECTED":  # TFLite Micro's (M0, shift): double products (profiles/tflm.py)
            m0, shift = tflm.fc_multipliers(float(inp.scale[0]), filt.scale, float(out.scale[0]), channels)
        else:
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
        "requantize": "double" if requantizes_in_double(op) else "fixed-point",
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
                "macs": op_macs(g, op, shapes),
            }
        )
    return rows


def _fmt_tensor(t: dict) -> str:
    q = ""
    if t["scale"] is not None:
        s, z = t["scale"], t["zero_point"]
        if isinstance(s, dict):
            q = f"  per-channel x{s['count']} (axis {t['quantized_dimension']}) scale [{s['min']:.6g} .. {s['max']:.6g}]"
            zp = str(z)
            if isinstance(z, dict):
                zp = str(z["min"]) if z["min"] == z["max"] else f"[{z['min']} .. {z['max']}]"
            q += f" zp {zp}"
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
    lines = [
        f"model: {model.source}  ({len(g.ops)} ops, {len(g.tensors)} tensors, numerics={model.numerics!r})"
    ]
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
            fixed = f"M0 {_summary(np.array(m['M0']), '{}')}, shift {_summary(np.array(m['shift']), '{}')}"
            if m["requantize"] == "double":
                lines.append(
                    f"    M = s_in*s_w/s_out (double): {_summary(real, '{:.9g}')}   reference: round(double(acc) * M)"
                    " in double, no fixed-point multiplier"
                )
                lines.append(f"      TFLite Micro would use M0 * 2^(shift-31) instead: {fixed}")
            else:
                lines.append(f"    M = s_in*s_w/s_out: {_summary(real)}   as M0 * 2^(shift-31): {fixed}")
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
def _load_image(model: Model, path: str, spec: dict | None, resize: str | None) -> np.ndarray:
    """The package's image pipeline (engine.preprocess) with the registry's spec (default: raw pixels)."""
    from .preprocess import preprocess

    spec = dict(spec or {})
    if resize:
        spec["resize"] = resize
    return preprocess(path, model.inputs[0], spec)


def make_inputs(
    model: Model,
    image: str | None = None,
    npy: str | None = None,
    seed: int | None = None,
    resize: str | None = None,
    spec: dict | None = None,
) -> list[np.ndarray]:
    """One array per model input: from an image, a .npy file (single input) or random (seeded)."""
    g = model.graph
    specs = [(g.tensors[i], (max(g.tensors[i].shape[0], 1), *g.tensors[i].shape[1:])) for i in g.inputs]
    if image is not None:
        if len(specs) != 1:
            raise InputError("--image needs a model with exactly one input")
        return [_load_image(model, image, spec, resize)]
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


def run_all(model: Model, inputs: list[np.ndarray]) -> Interpreter:
    """An engine Interpreter holding every tensor of one run on `inputs` (keep_all plan)."""
    it = Interpreter.from_model(model, experimental_preserve_all_tensors=True)
    for d, x in zip(it.get_input_details(), inputs):
        if tuple(d["shape"]) != x.shape:
            it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it


# ---- one element, step by step -------------------------------------------------------------------
def _i32(v: int) -> int:
    return int(wrap_int32(np.int64(v)))


def _check_element(op: Op, t: Tensor, shape: tuple, element: tuple[int, ...]) -> tuple[int, ...]:
    if len(element) != len(shape) or any(not 0 <= e < d for e, d in zip(element, shape)):
        raise InputError(
            f"--element {','.join(map(str, element))}: {op.where()} output '{t.name}' has shape {list(shape)}"
        )
    return tuple(int(e) for e in element)


def _conv_terms(
    op: Op, x: np.ndarray, w: np.ndarray, out_shape: tuple, element: tuple
) -> tuple[int, list, dict]:
    """(output channel, terms [(label, x or None for padding, w)], receptive-field description)."""
    o = op.options
    if op.type == "FULLY_CONNECTED":
        units, depth = w.shape
        rows = x.size // depth
        flat = int(np.ravel_multi_index(element, out_shape))
        r, u = divmod(flat, units)
        x2 = x.reshape(rows, depth)
        terms = [((d,), int(x2[r, d]), int(w[u, d])) for d in range(depth)]
        field = {
            "text": f"input row {r} (of the input viewed as [{rows}, {depth}]), all {depth} values",
            "row": r,
        }
        return u, terms, field
    b, oy, ox, oc = element
    _, h, wd, c = x.shape
    kh, kw = (w.shape[1], w.shape[2])
    win = window(op, h, wd, kh, kw)  # as the op's prepare reads it
    sh, sw, dh, dw, top, left = win.sh, win.sw, win.dh, win.dw, win.top, win.left
    y0, x0 = oy * sh - top, ox * sw - left
    if op.type == "CONV_2D":
        channels = range(c)
    else:
        dm = w.shape[3] // c
        channels = [oc // dm]
    terms = []
    padded = 0
    for ky in range(kh):
        for kx in range(kw):
            iy, ix = y0 + ky * dh, x0 + kx * dw
            inside = 0 <= iy < h and 0 <= ix < wd
            padded += not inside
            for ci in channels:
                wv = int(w[oc, ky, kx, ci]) if op.type == "CONV_2D" else int(w[0, ky, kx, oc])
                terms.append(((ky, kx, iy, ix, ci), int(x[b, iy, ix, ci]) if inside else None, wv))
    chan = f"channels 0..{c - 1}" if op.type == "CONV_2D" else f"channel {channels[0]}"
    text = (
        f"input rows {y0}..{y0 + (kh - 1) * dh}, cols {x0}..{x0 + (kw - 1) * dw} (step {dh}x{dw}), {chan}, batch {b};"
        f" stride {sh}x{sw}, padding {o.get('padding', 'SAME')} (top {top}, left {left});"
        f" {padded} of {kh * kw} window positions fall in the padding and contribute 0"
    )
    return oc, terms, {"text": text, "rows": [y0, y0 + (kh - 1) * dh], "cols": [x0, x0 + (kw - 1) * dw]}


def _activation_float(act: str, v: float) -> float:
    if act == "RELU":
        return max(v, 0.0)
    if act == "RELU6":
        return min(max(v, 0.0), 6.0)
    if act == "RELU_N1_TO_1":
        return min(max(v, -1.0), 1.0)
    return v


@dataclass
class ConvTrace:
    """One output element of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, step by step as the reference
    kernels compute it, next to a float recomputation: what _format_trace prints and _trace_dict returns."""

    op: Op
    inp: Tensor
    filt: Tensor
    bias_t: Tensor | None
    out_t: Tensor
    in_shape: list
    w_shape: list
    out_shape: list
    element: tuple
    channel: int
    terms: list  # (label, x or None for padding, w)
    field: dict  # the receptive field (_conv_terms)
    products: list  # (x - zx) * (w - zw) per term
    s_in: float
    zx: int
    s_w: float
    zw: int
    s_out: float
    zo: int
    bias: int
    s_bias: float
    lo: int
    hi: int
    act: str
    acc_exact: int
    acc: int
    acc_b: int
    m0: int
    shift: int
    shifted: int  # the fixed-point path: a, b, c
    high: int
    divided: int
    fixed_final: int
    real_m: float
    double: bool  # LiteRT's reference FULLY_CONNECTED: rescaled in double
    product: float | None
    scaled: int
    with_zp: int
    final: int
    engine: int
    float_sum: float
    float_act: float
    float_q: int
    numerics: str = profiles.DEFAULT  # the profile of the model the engine value comes from
    litert_final: int | None = None  # LiteRT's default interpreter's value (inspect_litert.py)

    @property
    def own_final(self) -> int:
        """The value the model's own profile computes: TFLite Micro's fixed-point FULLY_CONNECTED under tflm."""
        if self.numerics == "litert" and self.litert_final is not None:
            return self.litert_final
        return self.fixed_final if self.double and self.numerics == "tflm" else self.final


def _conv_trace(op: Op, g: Graph, ins: list, out: np.ndarray, element: tuple) -> ConvTrace:
    """The integer computation of one output element, and the float one it approximates."""
    inp, filt, out_t = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    bias_t = g.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    s_in, zx = per_tensor(op, inp)
    s_out, zo = per_tensor(op, out_t)
    channels = out_channels(op, g)
    o, terms, field = _conv_terms(op, ins[0], ins[1], out.shape, element)
    zw = int(filter_zero_points(op, filt, channels)[o])
    s_w = float(filt.scale[o if filt.scale.size > 1 else 0])
    bias = int(bias_vector(op, bias_t, ins[2] if bias_t is not None else None, channels)[o])
    if op.type == "FULLY_CONNECTED":  # its only fixed-point path is TFLite Micro's (double multipliers)
        m0_all, shift_all = tflm.fc_multipliers(s_in, filt.scale, s_out, channels)
    else:
        m0_all, shift_all = conv_multipliers(op, inp, filt, out_t, channels)
    m0, shift = int(m0_all[o]), int(shift_all[o])
    lo, hi = fused_activation(op, out_t)
    products = [0 if xv is None else (xv - zx) * (wv - zw) for _, xv, wv in terms]
    acc_exact = sum(products)
    acc = _i32(acc_exact)
    acc_b = _i32(acc + bias)
    # the fixed-point path: the convolutions' reference, TFLite Micro's FULLY_CONNECTED
    shifted = int(wrap_int32(np.int64(acc_b) << np.int64(max(shift, 0))))
    high = int(saturating_rounding_doubling_high_mul(np.int64(shifted), np.int64(m0)))
    divided = int(rounding_divide_by_pot(np.int64(high), np.int64(max(-shift, 0))))
    assert divided == int(multiply_by_quantized_multiplier(np.int64(acc_b), np.int64(m0), np.int64(shift)))
    fixed_final = min(max(divided + zo, lo), hi)
    real_m = s_in * s_w / s_out  # in double, in the order fully_connected.prepare computes it
    double = requantizes_in_double(op)
    product = None
    if double:
        # LiteRT's reference FULLY_CONNECTED: int32(std::round(double(acc) * M)), saturated to int32
        product = float(acc_b) * real_m
        scaled = min(max(round_half_away(product), -(2**31)), 2**31 - 1)
        with_zp = scaled + zo
        final = min(max(with_zp, lo), hi)
        assert final == int(conv_kernels.requantize_double(np.int32(acc_b), real_m, zo, lo, hi))
    else:
        scaled, with_zp, final = divided, divided + zo, fixed_final
    s_bias = (
        float(bias_t.scale[o if bias_t.scale.size > 1 else 0])
        if bias_t is not None and bias_t.quantized
        else s_in * s_w
    )
    xf = np.array([0.0 if xv is None else (xv - zx) * s_in for _, xv, _ in terms])
    wf = np.array([(wv - zw) * s_w for _, _, wv in terms])
    float_sum = float(xf @ wf) + bias * s_bias
    act = op.options.get("fused_activation_function", "NONE")
    float_act = _activation_float(act, float_sum)
    float_q = min(max(round_half_away(float_act / s_out) + zo, lo), hi)
    return ConvTrace(
        op, inp, filt, bias_t, out_t, list(ins[0].shape), list(ins[1].shape), list(out.shape), element, o,
        terms, field, products, s_in, zx, s_w, zw, s_out, zo, bias, s_bias, lo, hi, act, acc_exact, acc,
        acc_b, m0, shift, shifted, high, divided, fixed_final, real_m, double, product, scaled, with_zp,
        final, int(out[element]), float_sum, float_act, float_q, profiles.profile_of(g),
    )  # fmt: skip


def _trace_header(t: ConvTrace) -> list[str]:
    op, inp, filt, bias_t, out_t, o = t.op, t.inp, t.filt, t.bias_t, t.out_t, t.channel
    lines = [
        (
            f"layer [{op.index}] {op.type}  output #{op.outputs[0]} '{out_t.name}' {out_t.dtype}{t.out_shape},"
            f" element {t.element}  (output channel {o})"
        ),
        f"  input   #{op.inputs[0]} '{inp.name}' {inp.dtype}{t.in_shape}  scale s_in = {t.s_in:.9g}, zero point zx = {t.zx}",
        (
            f"  weights #{op.inputs[1]} '{filt.name}' {filt.dtype}{t.w_shape}  channel {o}: scale s_w = {t.s_w:.9g},"
            f" zero point zw = {t.zw}"
        ),
    ]
    if bias_t is not None:
        lines.append(
            f"  bias    #{op.inputs[2]} '{bias_t.name}' int32  channel {o}: {t.bias} (scale {t.s_bias:.9g} = s_in*s_w)"
        )
    lines.append(
        f"  output  scale s_out = {t.s_out:.9g}, zero point zo = {t.zo}; fused activation {t.act} -> clamp [{t.lo}, {t.hi}]"
    )
    lines += [f"receptive field: {t.field['text']}", ""]
    return lines


def _trace_terms(t: ConvTrace, max_terms: int) -> list[str]:
    """The accumulator's terms: all of them, or the largest ones (and per window position for CONV_2D)."""
    op, terms, products = t.op, t.terms, t.products
    nz = sum(1 for p in products if p != 0)
    lines = [f"terms (x - zx) * (w - zw): {len(terms)} terms, {nz} nonzero"]
    w_ = lines.append
    if op.type == "CONV_2D" and len(terms) > max_terms:
        by_pos: dict = {}
        for (label, xv, _), p in zip(terms, products):
            key = label[:4]
            by_pos[key] = by_pos.get(key, 0) + p
        w_("  per window position: (ky, kx) -> input (iy, ix): partial sum over channels")
        for (ky, kx, iy, ix), ps in by_pos.items():
            w_(f"    ({ky}, {kx}) -> ({iy:>3}, {ix:>3}): {ps:>10}")
    shown = list(range(len(terms)))
    if len(terms) > max_terms:
        shown = sorted(sorted(shown, key=lambda k: -abs(products[k]))[:max_terms])
        w_(f"  the {max_terms} largest |terms| (--max-terms to show more):")
    at = "input (d)" if op.type == "FULLY_CONNECTED" else "input (iy, ix, c)"
    w_(f"    {at:<24} {'x':>5} {'x-zx':>6} {'w':>5} {'w-zw':>6} {'product':>9}")
    for k in shown:
        label, xv, wv = terms[k]
        where = "(" + ", ".join(map(str, label[2:] if op.type != "FULLY_CONNECTED" else label)) + ")"
        xs = "pad" if xv is None else str(xv)
        xz = "0" if xv is None else str(xv - t.zx)
        w_(f"    {where:<24} {xs:>5} {xz:>6} {wv:>5} {wv - t.zw:>6} {products[k]:>9}")
    if len(shown) < len(terms):
        rest = sum(products[k] for k in range(len(terms)) if k not in set(shown))
        w_(f"    ... {len(terms) - len(shown)} more terms summing to {rest}")
    w_("")
    return lines


def _step(label: str, value) -> str:
    return f"  {label:<62} = {value}"


def _trace_integer(t: ConvTrace) -> list[str]:
    """Steps 1-5 of the reference's integer computation (and TFLite Micro's, where it differs)."""
    left, right = max(t.shift, 0), max(-t.shift, 0)
    m_fixed = t.m0 * 2.0 ** (t.shift - 31)
    fixed_lines = [
        f"     M0 = {t.m0} (int32 in [2^30, 2^31)), shift = {t.shift}  (M0 * 2^(shift-31) = {m_fixed:.12g})",
        f"   a. (acc + bias) << max(shift, 0) = << {left}, int32",
        "   b. SaturatingRoundingDoublingHighMul(a, M0) = round(a*M0 / 2^31)",
        f"   c. RoundingDivideByPOT(b, {right}) = round(b / 2^{right}), ties away from 0",
    ]
    fixed_lines[1:] = [_step(s, v) for s, v in zip(fixed_lines[1:], (t.shifted, t.high, t.divided))]
    how = "FULLY_CONNECTED rescales in double, not fixed point" if t.double else "fixed-point rescale"
    lines = [f"integer computation (TFLite reference kernels; {how}):"]
    lines.append(_step("1. int32 accumulator acc = sum((x - zx)(w - zw))", t.acc))
    if t.acc != t.acc_exact:
        lines.append(f"     (the exact sum {t.acc_exact} does not fit in int32: wrapped)")
    lines.append(_step(f"2. acc + bias = {t.acc} + {t.bias}", t.acc_b))
    if t.double:
        lines.append(
            f"  3. rescale in double by M = double(s_in) * double(s_w) / double(s_out) = {t.real_m!r}:"
        )
        lines.append(_step(f"   a. double(acc + bias) * M = {t.acc_b} * M", f"{t.product!r}"))
        lines.append(_step("   b. int32(std::round(a)), ties away from 0", t.scaled))
    else:
        lines.append(f"  3. rescale by M = s_in*s_w/s_out = {t.real_m:.12g}, held as M0 * 2^(shift - 31):")
        lines.extend(fixed_lines)
        lines.append(f"     (the exact (acc + bias) * M = {t.acc_b * t.real_m:.6f})")
    lines.append(_step(f"4. + output zero point {t.zo}", t.with_zp))
    lines.append(_step(f"5. clamp to [{t.lo}, {t.hi}] (fused activation {t.act})", t.final))
    ok = t.own_final == t.engine
    lines.append(
        f"result {t.out_t.dtype}: {t.own_final}   engine (keep_all run, numerics={t.numerics!r}): {t.engine}"
        f"   {'equal' if ok else 'MISMATCH'}"
    )
    if t.double:
        lines += [
            "",
            "TFLite Micro's FULLY_CONNECTED rescales with the fixed-point M0, shift (MultiplyByQuantizedMultiplier):",
        ]
        lines.extend(fixed_lines)
        lines.append(_step(f"   d. + output zero point {t.zo}, clamp to [{t.lo}, {t.hi}]", t.fixed_final))
        if t.fixed_final != t.final:
            lines.append(
                f"  TFLITE MICRO DIFFERS: it gives {t.fixed_final}, the reference {t.final}:"
                f" (acc + bias) * M = {t.product:.9g} lies next to a rounding boundary, and the fixed-point"
                " path (M0 rounded to 31 bits, then two roundings, b and c) lands on its other side"
            )
        else:
            lines.append(f"  TFLite Micro gives the same value, {t.fixed_final}")
    return lines


def _trace_float(t: ConvTrace) -> list[str]:
    """The value the output stands for, and the float computation it approximates."""
    how = "rounding in double" if t.double else "fixed-point M and two roundings"
    return [
        "",
        f"float value it stands for: (q - zo) * s_out = ({t.final} - {t.zo}) * {t.s_out:.9g} = {(t.final - t.zo) * t.s_out:.9g}",
        f"float recomputation from dequantized inputs, weights and bias: sum(x_f * w_f) + b_f = {t.float_sum:.9g}",
        f"  after {t.act}: {t.float_act:.9g}; quantized directly: round({t.float_act:.6g} / s_out) + zo, clamped = {t.float_q}"
        + (
            ""
            if t.float_q == t.final
            else f"  (the integer path gives {t.final}: integer accumulation, {how})"
        ),
    ]


def _trace_dict(t: ConvTrace, text: str) -> dict:
    result = {
        "layer": t.op.index,
        "op": t.op.type,
        "element": list(t.element),
        "channel": t.channel,
        "terms": len(t.terms),
        "acc": t.acc,
        "bias": t.bias,
        "acc_plus_bias": t.acc_b,
        "requantize": "double" if t.double else "fixed-point",
        "M": t.real_m,
        "M0": t.m0,
        "shift": t.shift,
        "scaled": t.scaled,
        "plus_zero_point": t.with_zp,
        "clamp": [t.lo, t.hi],
        "final": t.own_final,
        "engine": t.engine,
        "equal": t.own_final == t.engine,
        "float_value": (t.final - t.zo) * t.s_out,
        "float_recomputed": t.float_act,
        "float_quantized": t.float_q,
        "text": text,
    }
    fixed = {"shifted": t.shifted, "high_mul": t.high, "divided": t.divided}
    if t.double:
        result["product"] = t.product
        result["tflite_micro"] = {**fixed, "plus_zero_point": t.divided + t.zo, "final": t.fixed_final}
        result["tflite_micro_differs"] = t.fixed_final != t.final
    else:
        result.update(fixed)
    return result


def _conv_steps(op: Op, g: Graph, ins: list, out: np.ndarray, element: tuple, max_terms: int) -> dict:
    t = _conv_trace(op, g, ins, out, element)
    litert_lines, litert_final = litert_steps(t, g)
    t = dataclasses.replace(t, litert_final=litert_final)
    lines = _trace_header(t) + _trace_terms(t, max_terms) + _trace_integer(t) + litert_lines + _trace_float(t)
    return {**_trace_dict(t, "\n".join(lines)), "litert": litert_final}


def _generic_steps(op: Op, g: Graph, ins: list, out: np.ndarray, element: tuple) -> dict:
    out_t = g.tensors[op.outputs[0]]
    lines = [f"layer [{op.index}] {op.type}  {_fmt_options(op.options)}".rstrip()]

    def q(t: Tensor) -> str:
        if t.scale.size == 1:
            return f"scale {t.scale[0]:.9g} zp {t.zero_point[0]}"
        return "per-channel" if t.scale.size else "not quantized"

    def real(t: Tensor, v) -> str:
        if t.scale.size == 1 and np.issubdtype(np.asarray(v).dtype, np.integer):
            return f" (float {(int(v) - int(t.zero_point[0])) * float(t.scale[0]):.9g})"
        return ""

    for k, (i, a) in enumerate(zip(op.inputs, ins)):
        if i < 0:
            continue
        t = g.tensors[i]
        head = f"  input {k} #{i} '{t.name}' {t.dtype}{list(a.shape)} {q(t)}"
        if a.shape == out.shape:
            lines.append(f"{head}: at {element} = {a[element]}{real(t, a[element])}")
        elif a.size == 1:
            lines.append(f"{head}: {a.reshape(-1)[0]}{real(t, a.reshape(-1)[0])}")
        elif a.size <= 16:
            lines.append(f"{head}: {a.reshape(-1).tolist()}")
        else:
            lines.append(f"{head} (shape differs from the output's)")
    v = out[element]
    lines.append(
        f"  output #{op.outputs[0]} '{out_t.name}' {out_t.dtype}{list(out.shape)} {q(out_t)}:"
        f" at {element} = {v}{real(out_t, v)}"
    )
    return {
        "layer": op.index,
        "op": op.type,
        "element": list(element),
        "final": v.item(),
        "engine": v.item(),
        "equal": True,
        "text": "\n".join(lines),
    }


def element_steps(
    model: Model, layer: int, element: tuple[int, ...], inputs: list[np.ndarray], max_terms: int = 16
) -> dict:
    """The computation of one output element of one layer, as a dict (with 'text' for display)."""
    g = model.graph
    if not 0 <= layer < len(g.ops):
        raise InputError(f"--layer {layer}: the model has layers 0..{len(g.ops) - 1}")
    op = g.ops[layer]
    it = run_all(model, inputs)
    out = it.get_tensor(op.outputs[0])
    element = _check_element(op, g.tensors[op.outputs[0]], out.shape, element)
    ins = [it.get_tensor(i) if i >= 0 else None for i in op.inputs]
    quantized = all(g.tensors[i].quantized for i in op.inputs[:2] + op.outputs[:1])
    if op.type in CONV_LIKE and quantized and g.tensors[op.inputs[0]].dtype in ("int8", "uint8"):
        steps = _conv_steps(op, g, ins, out, element, max_terms)
    else:
        steps = _generic_steps(op, g, ins, out, element)
    return _with_profiles(steps, model, op, ins, element)


def layer_under_profiles(model: Model, op: Op, ins: list, element: tuple) -> dict[str, object]:
    """The element as each numerics profile computes this layer from the same inputs (the layer alone,
    prepared again per profile): {profile: value, or 'refused: why'}."""
    g = model.graph
    known = model.plan(ins[0].shape[0] if ins and ins[0] is not None and ins[0].ndim else 1).values
    shapes = [None if a is None else tuple(a.shape) for a in ins]
    values = [known.get(i) if i >= 0 else None for i in op.inputs]
    found: dict[str, object] = {}
    for name in profiles.PROFILES:
        gp = dataclasses.replace(g, numerics=name)
        try:
            profiles.admit(op, gp)
            prepared = kernel_for(op)(op, gp, shapes, values)
        except EngineError as e:
            found[name] = f"refused: {e}"
            continue
        outs = [np.zeros(s, g.tensors[i].np_dtype) for i, s in zip(op.outputs, prepared.out_shapes)]
        scratch = [np.zeros(s, d) for s, d in prepared.scratch]
        prepared.run_serial(list(ins), outs, scratch)
        found[name] = outs[0][element].item()
    return found


def _with_profiles(steps: dict, model: Model, op: Op, ins: list, element: tuple) -> dict:
    """steps with every numerics profile's value of the element side by side, and whether they disagree."""
    found = layer_under_profiles(model, op, ins, element)
    computed = [v for v in found.values() if not (isinstance(v, str) and v.startswith("refused"))]
    differ = len({repr(v) for v in computed}) > 1  # a profile that refuses the op disagrees with nothing
    lines = [
        "",
        f"numerics profiles (this layer alone on the same inputs; the model runs {model.numerics!r}):",
    ]
    for name, v in found.items():
        lines.append(f"  {name:<10} {profiles.PROFILES[name].runtime + ':':<30} {v}")
    why = tflm.DIFFERENCES.get(op.type)
    refusing = [n for n, v in found.items() if isinstance(v, str) and v.startswith("refused")]
    if differ:
        lines.append(f"  THE PROFILES DISAGREE on this element: {why or 'see the values above'}")
    elif refusing:
        lines.append(f"  {', '.join(refusing)} cannot run this op; the others agree on this element")
    else:
        lines.append(
            "  the profiles agree on this element"
            + (f" (they can differ on {op.type}: {why})" if why else "")
        )
    litert_why = litert_xnn.describe(op, model.graph)
    if litert_why:
        lines.append(f"  litert: {litert_why}")
    return {**steps, "numerics": model.numerics, "profiles": found, "profiles_differ": differ,
            "text": steps["text"] + "\n" + "\n".join(lines)}  # fmt: skip


# ---- LiteRT comparison ---------------------------------------------------------------------------
# Runs in a child process: LiteRT's reference kernels can abort the whole process on some models.
_LITERT_WORKER = r"""
import json, sys
import numpy as np
d = sys.argv[1]
job = json.load(open(d + "/job.json"))
try:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    it = Interpreter(model_path=job["model"], num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    details = it.get_input_details()
    with np.load(d + "/inputs.npz") as z:
        xs = [z["in%d" % k] for k in range(len(details))]
    for det, x in zip(details, xs):
        if tuple(det["shape"]) != x.shape:
            it.resize_tensor_input(det["index"], list(x.shape), strict=False)
    it.allocate_tensors()
    for det, x in zip(details, xs):
        it.set_tensor(det["index"], x)
    it.invoke()
    out = {}
    for i in job["tensors"]:
        try:
            out["t%d" % i] = it.get_tensor(i)
        except Exception:
            pass
    np.savez(d + "/result.npz", **out)
except Exception as e:
    open(d + "/error.txt", "w").write("%s: %s" % (type(e).__name__, e))
    sys.exit(3)
"""


def litert_reference(model_path: Path, inputs: list[np.ndarray], tensors: list[int]) -> dict[int, np.ndarray]:
    """Tensors (by index) of one run of LiteRT's reference kernels with every tensor preserved."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        raise EngineError("--compare-litert needs LiteRT: pip install ai-edge-litert")
    if model_path is None or model_path.suffix == ".npz":
        raise EngineError("--compare-litert needs a .tflite model (LiteRT cannot read the engine's .npz)")
    with tempfile.TemporaryDirectory(prefix="inspect_litert_") as tmp:
        d = Path(tmp)
        np.savez(d / "inputs.npz", **{f"in{k}": x for k, x in enumerate(inputs)})
        (d / "job.json").write_text(
            json.dumps({"model": str(Path(model_path).resolve()), "tensors": tensors})
        )
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _LITERT_WORKER, str(d)],
                capture_output=True,
                text=True,
                timeout=900,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise EngineError("LiteRT reference run timed out") from None
        if proc.returncode == 3 and (d / "error.txt").exists():
            raise EngineError(f"LiteRT cannot run the model: {(d / 'error.txt').read_text()}")
        if proc.returncode != 0:
            how = f"exit status {proc.returncode}"
            if proc.returncode < 0:
                how = f"signal {signal.Signals(-proc.returncode).name}"
            raise EngineError(f"the LiteRT reference interpreter died ({how})")
        with np.load(d / "result.npz") as z:
            return {int(k[1:]): z[k] for k in z.files}


def compare_litert(model: Model, model_path: Path | None, inputs: list[np.ndarray]) -> dict:
    """Every layer's output tensor: engine (keep_all) vs LiteRT BUILTIN_REF on the same input."""
    g = model.graph
    wanted = sorted({i for op in g.ops for i in op.outputs} | set(g.inputs))
    ref = litert_reference(model_path, inputs, wanted)
    it = run_all(model, inputs)
    layers = []
    first = None
    for op in g.ops:
        for i in op.outputs:
            t = g.tensors[i]
            mine = it.get_tensor(i)
            row = {"layer": op.index, "op": op.type, "tensor": i, "name": t.name, "elements": int(mine.size)}
            theirs = ref.get(i)
            if theirs is None:
                row["status"] = "missing"
            elif theirs.shape != mine.shape or theirs.dtype != mine.dtype:
                row["status"] = "differs"
                row["detail"] = (
                    f"LiteRT {theirs.dtype}{list(theirs.shape)} vs engine {mine.dtype}{list(mine.shape)}"
                )
            else:
                diff = mine != theirs
                n = int(np.count_nonzero(diff))
                row["status"] = "equal" if n == 0 else "differs"
                row["differing"] = n
                if n:
                    at = tuple(int(v) for v in np.argwhere(diff)[0])
                    big = np.abs(mine.astype(np.float64) - theirs.astype(np.float64)).max()
                    row["detail"] = (
                        f"{n} of {mine.size} elements differ (max |diff| {big:g}); first at {at}:"
                        f" engine {mine[at]}, LiteRT {theirs[at]}"
                    )
            if row["status"] == "differs" and first is None:
                first = row
            layers.append(row)
    return {"layers": layers, "first_differing": first}


def format_compare(result: dict) -> str:
    lines = ["LiteRT reference kernels (BUILTIN_REF, preserve_all_tensors) vs engine, same input:"]
    for r in result["layers"]:
        status = {"equal": f"equal ({r['elements']} elements)", "missing": "not returned by LiteRT"}.get(
            r["status"], "DIFFERS: " + r.get("detail", "")
        )
        lines.append(f"  [{r['layer']:>3}] {r['op']:<28} #{r['tensor']:<4} {status}  '{r['name']}'")
    f = result["first_differing"]
    if f is None:
        n = sum(r["status"] == "equal" for r in result["layers"])
        lines.append(
            f"no layer differs: {n} of {len(result['layers'])} layer outputs compared, all bit-identical"
        )
    else:
        lines.append(f"first differing layer: [{f['layer']}] {f['op']} (tensor #{f['tensor']} '{f['name']}')")
    return "\n".join(lines)


# ---- command line --------------------------------------------------------------------------------
def _parse_element(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", "").strip("()[]").split(","))
    except ValueError:
        raise InputError(f"--element {text!r}: expected comma-separated integers such as 0,5,7,3") from None


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def run(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    model, path, spec = resolve_model(args.model, args.numerics)
    if args.element is not None and args.layer is None:
        raise InputError("--element needs --layer N")
    want_input = args.element is not None or args.compare_litert
    inputs = (
        make_inputs(model, args.image, args.input_npy, args.seed, args.resize, spec) if want_input else None
    )
    status = 0
    if args.element is not None:
        steps = element_steps(model, args.layer, _parse_element(args.element), inputs, args.max_terms)
        if args.json:
            print(
                json.dumps({k: v for k, v in steps.items() if k != "text"}, default=_json_default), file=out
            )
        else:
            print(steps["text"], file=out)
        status = 0 if steps["equal"] else 1
    elif not args.compare_litert:
        rows = layer_rows(model)
        if args.layer is not None:
            if not 0 <= args.layer < len(rows):
                raise InputError(f"--layer {args.layer}: the model has layers 0..{len(rows) - 1}")
            rows_shown = [rows[args.layer]]
        else:
            rows_shown = rows
        if args.json:
            doc = {
                "model": model.source,
                "numerics": model.numerics,
                "inputs": model.graph.inputs,
                "outputs": model.graph.outputs,
                "layers": rows_shown,
                "total_macs": sum(r["macs"] for r in rows),
            }
            print(json.dumps(doc, default=_json_default), file=out)
        else:
            print(format_listing(model, rows_shown), file=out)
    if args.compare_litert:
        result = {**compare_litert(model, path, inputs), "numerics": model.numerics}
        if args.json:
            print(json.dumps(result, default=_json_default), file=out)
        else:
            print(format_compare(result), file=out)
        status = status or (1 if result["first_differing"] is not None else 0)
    return status


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.inspect",
        description="List a quantized model's layers, or show one output element's integer computation.",
    )
    p.add_argument("model", help="a .tflite or .npz file (or a registry name)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--layer", type=int, help="layer (op) index")
    p.add_argument(
        "--element", help="output element of --layer, e.g. 0,5,7,3 (N,H,W,C) or 0,7 for FULLY_CONNECTED"
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", help="image file fed to the model (engine.preprocess: raw pixels, resized)")
    src.add_argument("--input-npy", help=".npy file holding the input tensor")
    src.add_argument("--seed", type=int, help="random input with this seed (the default input: seed 0)")
    p.add_argument("--resize", help="resampling for --image: nearest, bilinear (default), bicubic, ...")
    p.add_argument(
        "--compare-litert",
        action="store_true",
        help="compare every layer with LiteRT's reference kernels on the same input",
    )
    p.add_argument("--max-terms", type=int, default=16, help="accumulator terms shown (the largest ones)")
    p.add_argument(
        "--numerics",
        choices=list(profiles.PROFILES),
        default=profiles.DEFAULT,
        help="the profile the model is prepared with (--element shows every profile's value side by side)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0
    except EngineError as e:
        msg = " ".join(str(e).split())
        print(f"error: {msg}", file=sys.stderr)
        return e.exit_code or 1
    except MemoryError:  # the budget should have refused it first: still one line, never a traceback
        print("error: out of memory", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
