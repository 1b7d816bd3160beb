"""ADD, SUB and MUL on int16 (kernels/add.cc, sub.cc, mul.cc, the 16x8 paths), with broadcasting.

General scales (ADD/SUB with pot_scale_int16 false, or any scale that is not a power of two): the
8-bit formula with a left shift of 15 instead of 20,
  x_i = MulSmallerThanOneExp((q_i - zp_i) << 15, m_i, s_i);  out = MulSmallerThanOneExp(x1 ± x2, m_o, s_o)
where SUB subtracts the scaled values (its 8-bit kernel negates m_2 instead, which rounds differently).
Power-of-two scales with pot_scale_int16 (the schema default): out = RoundingDivideByPOT(q1, -e1) ±
RoundingDivideByPOT(q2, -e2), e_i = log2(s_i / s_out) <= 0, one of them 0, clamped (ADD only on equal
shapes: the reference aborts on a broadcast there).
MUL: out = zp_out + MultiplyByQuantizedMultiplier((q1 - zp1) * (q2 - zp2), m, shift), as for 8 bits.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.int16 import GENERAL, LEFT_SHIFT, MUL, POT, binary16
from ..numerics.fixedpoint import quantize_multiplier
from ..profiles import profile_of
from .broadcast import broadcast_plan, broadcast_shape
from .common import (
    Prepared,
    Shape,
    bound,
    fused_activation,
    per_tensor,
    require,
    require_types,
    tensors,
    view,
)
from .int16 import checked_log2


def _operands(op: Op, g: Graph):
    ins, outs = tensors(op, g)
    require(op, len(ins) == 2 and None not in ins and len(outs) == 1, "takes 2 inputs and 1 output")
    a, b, out = ins[0], ins[1], outs[0]
    for t in (a, b, out):
        require_types(op, t, ("int16",))
    return [per_tensor(op, t) for t in (a, b, out)], out


def _add_sub_params(op: Op, q: list, sign: int, broadcast: bool, pot: bool = True) -> tuple[int, np.ndarray]:
    """pot=False: the general path whatever the scales (TFLite Micro has no power-of-two path)."""
    (s1, zp1), (s2, zp2), (so, zpo) = q
    require(op, zp1 == 0 and zp2 == 0 and zpo == 0, "int16 zero points must be 0")
    if pot and op.options.get("pot_scale_int16", True):
        logs = [checked_log2(s) for s in (s1, s2, so)]
        if all(pot for pot, _ in logs):
            e1, e2 = logs[0][1] - logs[2][1], logs[1][1] - logs[2][1]
            require(op, e1 <= 0 and e2 <= 0 and 0 in (e1, e2), "power-of-two scales: one input must match")
            # the reference has no broadcasting ADD for this case (it aborts); its SUB has one
            require(op, sign < 0 or not broadcast, "int16 ADD with power-of-two scales cannot broadcast")
            return POT, np.array([-e1, -e2, sign], np.int64)
    twice = 2.0 * max(s1, s2)
    real_out = twice / (float(1 << LEFT_SHIFT) * so)
    require(op, real_out < 1.0, f"output scale {so:g} too small for input scales {s1:g}, {s2:g}")
    m1, sh1 = quantize_multiplier(s1 / twice)
    m2, sh2 = quantize_multiplier(s2 / twice)
    mo, sho = quantize_multiplier(real_out)
    return GENERAL, np.array([zp1, m1, sh1, zp2, m2, sh2, mo, sho, zpo, sign], np.int64)


def prepare_binary16(op: Op, g: Graph, shapes: list[Shape | None]) -> Prepared:
    """ADD, SUB or MUL with int16 inputs and output."""
    q, out = _operands(op, g)
    if op.type == "MUL":
        from .mul import real_multiplier

        (s1, zp1), (s2, zp2), (so, zpo) = q
        tflm = profile_of(g) == "tflm"  # TFLite Micro: s1 * s2 / s_out in double (mul_common.cc), as 8-bit
        m, shift = quantize_multiplier(
            float(s1) * float(s2) / float(so) if tflm else real_multiplier(s1, s2, so)
        )
        shift = shift & 31 if shift > 0 else shift  # the compiled reference's left shift, as mul.py
        mode, p = MUL, np.array([zp1, zp2, m, shift, zpo], np.int64)
    else:
        broadcast = tuple(shapes[0]) != tuple(shapes[1])
        mode, p = _add_sub_params(op, q, -1 if op.type == "SUB" else 1, broadcast, profile_of(g) != "tflm")
    lo, hi = fused_activation(op, out)
    out_shape = broadcast_shape(op, shapes[0], shapes[1])
    ext, sa, sb = broadcast_plan(out_shape, shapes[0], shapes[1])
    fn = binary16.pick(int(np.prod(out_shape)))
    if (
        profile_of(g) == "litert"
        and op.type == "ADD"
        and mode == GENERAL
        and tuple(shapes[0]) == tuple(shapes[1])
    ):
        from ..profiles.litert_builtin import add16  # LiteRT's builtin int16 ADD: NEON blocks, a scalar tail

        def run_builtin(inputs: list, outputs: list, scratch: list) -> None:
            add16(inputs[0].reshape(-1), inputs[1].reshape(-1), outputs[0].reshape(-1), p, lo, hi)

        return Prepared([out_shape], run_builtin)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        x, y = view(inputs[0]), view(inputs[1])
        return [(fn, (x, y, view(outputs[0]), ext, sa, sb, mode, p, lo, hi))]

    return bound([out_shape], bind)


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    return prepare_binary16(op, g, shapes)
