"""The multipliers computed at prepare, as TFLite's Prepare computes them (kernel_util.cc): which scale
products are taken in float32 and which in double decides the last bit of some multipliers."""

from __future__ import annotations

import numpy as np

from .fixedpoint import quantize_multiplier


def conv_multipliers(
    s_in: float, filter_scales: np.ndarray, s_out: float, channels: int, float32_product: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift, the real multiplier in double) of CONV_2D /
    DEPTHWISE_CONV_2D / FULLY_CONNECTED.

    float32_product (uint8 per-tensor models: GetQuantizedConvolutionMultipler): the scale product is
    taken in float32 before widening to double, one multiplier for every channel; otherwise
    (PopulateConvolutionQuantizationParams) the per-channel product is in double.
    """
    s_in, s_out = np.float32(s_in), np.float32(s_out)
    fs = np.asarray(filter_scales).astype(np.float32)
    if float32_product:
        real = float(np.float32(s_in * fs[0])) / float(s_out)
        m, s = quantize_multiplier(real)
        return np.full(channels, m, np.int32), np.full(channels, s, np.int32), np.full(channels, real)
    # int32 arrays: LLVM then knows the products fit vpmuldq, twice as fast as 64-bit multiplies
    mult = np.empty(channels, np.int32)
    shift = np.empty(channels, np.int32)
    real = np.empty(channels)
    for c in range(channels):
        real[c] = float(s_in) * float(fs[c if fs.size > 1 else 0]) / float(s_out)
        mult[c], shift[c] = quantize_multiplier(float(real[c]))
    return mult, shift, real
