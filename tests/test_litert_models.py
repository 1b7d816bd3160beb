"""numerics="litert" on every shared and zoo model against LiteRT's default interpreter (OpResolverType.AUTO,
XNNPACK applied): 20 random inputs, every tensor the interpreter exposes (with preserve_all each op is a
partition of its own) and the final outputs of the normal, fused partitions; the delegate's partition equal.

PENDING: models with an op whose LiteRT arithmetic the profile does not reproduce yet (xfail, not strict:
the difference is rare). person_detect is not here: LiteRT cannot load it (quantized_dimension 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.litert_check import check_litert
from tests.oracle import require

SHARED = ["hello_world_int8", "micro_speech_int8", "mnist_uint8", "ssd_mobilenet_v1_coco_uint8"]
ZOO = [
    "ad01_int8",
    "kws_ref_model",
    "vww_96_int8",
    "str_ww_ref_model",
    "pretrainedResnet_quant",
    "mobilenet_v1_0.25_128_quant",
    "tf2_mobilenet_v2_1.0_224_ptq",
    "deeplabv3_mnv2_dm05_pascal_quant",
    "movenet_single_pose_lightning_ptq",
    "traffic_model",
    "split_concat",
    "keras_lstm_mnist_ptq",
    "int16x8_mixed",
    "yolov8n_full_integer_quant",
]
PENDING: dict[str, str] = {}
SLOW = {"ssd_mobilenet_v1_coco_uint8", "deeplabv3_mnv2_dm05_pascal_quant", "yolov8n_full_integer_quant"}


def _path(models_dir: Path, name: str) -> Path:
    for folder in (models_dir, models_dir / "zoo"):
        p = folder / f"{name}.tflite"
        if p.exists():
            return p
    pytest.skip(f"{name}.tflite is not in the shared models")


def _random_sets(model: bytes, n: int) -> list[list[np.ndarray]]:
    import engine

    m = engine.load(model, numerics="litert", warmup=False)
    rng = np.random.default_rng(0)
    sets = []
    for _ in range(n):
        xs = []
        for t in m.inputs:
            dt = np.dtype(t.dtype)
            if dt.kind == "f":
                xs.append(rng.standard_normal(tuple(t.shape)).astype(dt))
            else:
                info = np.iinfo(dt)
                xs.append(rng.integers(info.min, int(info.max) + 1, tuple(t.shape)).astype(dt))
        sets.append(xs)
    return sets


def _params():
    for name in SHARED + ZOO:
        marks = []
        if name in PENDING:
            marks.append(pytest.mark.xfail(reason=PENDING[name]))
        if name in SLOW:
            marks.append(pytest.mark.slow)
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_model_equals_litert_default(models_dir, name):
    require("litert")
    model = _path(models_dir, name).read_bytes()
    res = check_litert(model, _random_sets(model, 20))
    print(name, res.tensors, "tensors,", res.elements, "elements, 0 differ")
