"""Every shared and zoo model under numerics="litert" against LiteRT's default interpreter (OpResolverType.AUTO,
XNNPACK applied, x86): every tensor it exposes, 20 random inputs each, bit for bit, and the delegate's
partition for every op type profiles/litert.py has a rule for (tests/litert_check.py).

A model LiteRT refuses (person_detect: quantized_dimension 3 on 1-D biases) is refused by the profile
too. PENDING lists the models that still differ, with the op the first differences come from (an op whose
inputs all equal LiteRT's and whose output does not).
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.errors import UnsupportedError
from tests.conftest import shared_dir
from tests.litert_check import check_litert
from tests.oracle import OracleError, litert_run_many, require
from tests.test_tflm_models import model_inputs, random_inputs

N_RANDOM = 20
SLOW = {  # over 30 s here (the engine's and LiteRT's runs of every tensor)
    "ssd_mobilenet_v1_coco_uint8.tflite",
    "zoo/keras_lstm_mnist_ptq.tflite",
    "zoo/yolov8n_full_integer_quant.tflite",
    "zoo/deeplabv3_mnv2_dm05_pascal_quant.tflite",
    "zoo/movenet_single_pose_lightning_ptq.tflite",
}
# measured first differences, 20 random inputs: ops of the other half of issue 16 (not convolutions)
PENDING: dict[str, str] = {}
REFUSED = {"person_detect_int8.tflite": "quantized_dimension 3 outside its 1 dimensions"}


def _param(name: str):
    marks = [pytest.mark.slow] if name in SLOW else []
    if name in PENDING:
        marks.append(pytest.mark.xfail(reason=f"differs from LiteRT in {PENDING[name]}", strict=True))
    return pytest.param(name, marks=marks)


MODELS = [
    _param(name)
    for name in sorted(
        str(p.relative_to(shared_dir() / "models"))
        for pattern in ("*.tflite", "zoo/*.tflite")
        for p in (shared_dir() / "models").glob(pattern)
    )
]


@pytest.mark.parametrize("name", MODELS)
def test_model_equals_litert(name):
    require("litert")
    path = shared_dir() / "models" / name
    sets = random_inputs(model_inputs(path), N_RANDOM, seed=0)
    if name in REFUSED:
        with pytest.raises(UnsupportedError, match=REFUSED[name]):
            engine.load(path, numerics="litert")
        with pytest.raises(OracleError):
            litert_run_many(path.read_bytes(), sets[:1])
        return
    res = check_litert(path.read_bytes(), sets)
    assert res.elements > 0 and not np.isnan(res.elements)
