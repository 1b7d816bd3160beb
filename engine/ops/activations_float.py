"""float32 RELU, RELU6, LOGISTIC, TANH, HARD_SWISH, SOFTMAX (kernels/activations.cc with BUILTIN_REF),
each in float32 in the reference's order of operations:
  RELU: max(x, 0) (Eigen cwiseMax; -0.0 and NaN pass through), RELU6: x > 6 ? 6 : x < 0 ? 0 : x,
  LOGISTIC (reference_ops::Logistic): x > 16.619047f ? 1 : x < -9 ? expf(x) : 1 / (1 + expf(-x)),
  TANH: tanhf(x), HARD_SWISH: x * min(6, max(0, x + 3)) / 6,
  SOFTMAX (reference_ops::Softmax, last axis): m = max, e = expf((x - m) * float(beta)), the sum of the
  e in order, e / sum.
The ops' own modules dispatch float32 inputs here."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..profiles import litert_xnn
from .common import Prepared, Shape, bound, require, tensors, view

LOGISTIC_UPPER = np.float32(16.619047164916992188)
LOGISTIC_LOWER = np.float32(-9.0)
KINDS = {"RELU": 0, "RELU6": 1, "LOGISTIC": 2, "TANH": 3, "HARD_SWISH": 4}


@kernel
def _elementwise(x, out, kind):
    zero, three, six, one = np.float32(0), np.float32(3), np.float32(6), np.float32(1)
    for i in prange(x.size):
        v = x[i]
        if kind == 0:
            r = max(v, zero)
        elif kind == 1:
            r = six if v > six else (max(v, zero))
        elif kind == 2:
            if v > LOGISTIC_UPPER:
                r = one
            elif v < LOGISTIC_LOWER:
                r = np.float32(math.exp(v))
            else:
                r = one / (one + np.float32(math.exp(-v)))
        elif kind == 3:
            r = np.float32(math.tanh(v))
        else:
            t = v + three
            lo = max(zero, t)  # std::max(0, t)
            hi = min(six, lo)  # std::min(6, lo)
            r = v * hi / six
        out[i] = r


@kernel
def _softmax(x, out, beta):
    for i in prange(x.shape[0]):
        m = np.float32(-np.inf)
        for c in range(x.shape[1]):
            m = max(m, x[i, c])
        s = np.float32(0)
        for c in range(x.shape[1]):
            e = np.float32(math.exp((x[i, c] - m) * beta))
            out[i, c] = e
            s += e
        for c in range(x.shape[1]):
            out[i, c] = out[i, c] / s


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    _, (dst,) = tensors(op, g)
    require(op, dst.dtype == "float32", f"{dst.describe()}: output must be float32")
    litert_xnn.require_reproduced(op, g)
    shape = tuple(shapes[0])
    size = int(np.prod(shape, dtype=np.int64))
    if op.type == "SOFTMAX":
        require(op, len(shape) >= 1 and shape[-1] > 0, "input must have rank >= 1")
        rows = (size // shape[-1], shape[-1])
        beta = np.float32(op.options.get("beta", 1.0))
        softmax = _softmax.pick(size * 4)

        def bind_softmax(inputs: list, outputs: list, scratch: list) -> list:
            return [(softmax, (view(inputs[0], rows), view(outputs[0], rows), beta))]

        return bound([shape], bind_softmax)
    kind = KINDS[op.type]
    elementwise = _elementwise.pick(size * (4 if kind in (2, 3) else 1))

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(elementwise, (view(inputs[0]), view(outputs[0]), kind))]

    return bound([shape], bind)
