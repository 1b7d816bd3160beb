"""`engine.inspect --layer N --element ...`: the arithmetic of LiteRT's default interpreter (numerics="litert",
x86) for one output element of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED, beside the reference's and
TFLite Micro's (inspect.py): XNNPACK's fp32 rule where its delegate takes the layer, else the optimized
builtin kernel's (ruy's half-up rounding for CONV_2D / FULLY_CONNECTED, the reference's for DEPTHWISE)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .graph import Graph
from .numerics.fixedpoint import wrap_int32
from .profiles import litert


def litert_steps(t, g: Graph) -> tuple[list[str], int]:
    """(lines, LiteRT's value) for a ConvTrace t of a layer of graph g (whatever profile g was loaded with)."""
    gl = dataclasses.replace(g, numerics="litert")
    rule = litert.conv_rule(t.op, gl)
    why = litert.refusal(t.op, gl)
    lines = ["", "LiteRT's default interpreter (numerics='litert', x86):"]
    if rule == "fp32":
        scale = float(litert.requantization_scale(t.s_in, [t.s_w], t.s_out)[0])
        f = np.float32(np.int32(t.acc_b))
        scaled = f * np.float32(scale)
        clamped = min(max(scaled, np.float32(t.lo - t.zo)), np.float32(t.hi - t.zo))
        rounded = int(np.rint(clamped))
        final = rounded + t.zo
        lines += [
            "  the XNNPACK delegate takes this layer: its fp32 requantization",
            f"     scale = float32(s_in) * float32(s_w) / float32(s_out), in float32 = {scale!r}",
            f"   a. float32(acc + bias) = {float(f)!r}",
            f"   b. a * scale, in float32 = {float(scaled)!r}",
            f"   c. clamp to [lo - zo, hi - zo] = [{t.lo - t.zo}, {t.hi - t.zo}] = {float(clamped)!r}",
            f"   d. round half to even = {rounded}",
            f"   e. + output zero point {t.zo} = {final}",
        ]
    elif rule == "ruy":
        left, right = max(t.shift, 0), max(-t.shift, 0)
        shifted = int(wrap_int32(np.int64(t.acc_b) << np.int64(left)))
        high = (shifted * t.m0 + (1 << 30)) >> 31
        divided = (high + (1 << (right - 1))) >> right if right else high
        final = min(max(divided + t.zo, t.lo), t.hi)
        lines += [
            f"  the XNNPACK delegate refuses it ({why}): LiteRT's optimized kernel, through ruy",
            f"     M0 = {t.m0}, shift = {t.shift} (the reference's multiplier)",
            f"   a. (acc + bias) << {left}, int32 = {shifted}",
            f"   b. (a * M0 + 2^30) >> 31 = {high}",
            f"   c. (b + 2^{max(right - 1, 0)}) >> {right}, ties rounded up (the reference: away from 0) = {divided}",
            f"   d. + output zero point {t.zo}, clamp to [{t.lo}, {t.hi}] = {final}",
        ]
    else:
        final = t.fixed_final
        lines.append(
            f"  the XNNPACK delegate refuses it ({why}): LiteRT's optimized kernel rounds as the reference's"
            f" fixed point above = {final}"
        )
    if final != t.final:
        lines.append(f"  LITERT DIFFERS from the reference kernels: {final} vs {t.final}")
    else:
        lines.append(f"  LiteRT gives the reference's value, {final}")
    return lines, final


__all__ = ["litert_steps"]
