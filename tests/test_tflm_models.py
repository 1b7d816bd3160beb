"""Every shared and zoo model against TFLite Micro's interpreter with numerics="tflm": every tensor of 20
random inputs and the real inputs the shared data holds, bit for bit. A model the engine's tflm profile
refuses as one TFLite Micro cannot run must be refused by TFLite Micro too; one the engine does not run
at all (an op it lacks) is skipped, and checked here the day it runs.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

import engine
from tests.conftest import shared_dir
from tests.every_tensor import assert_every_tensor_equal
from tests.oracle import OracleError, micro_run_many

pytestmark = pytest.mark.usefixtures("tflm")
N_RANDOM = 20
SLOW = {"zoo/yolov8n_full_integer_quant.tflite"}  # TFLite Micro takes 30 s per YOLOv8n inference
MODELS = [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
    for name in sorted(
        str(p.relative_to(shared_dir() / "models"))
        for pattern in ("*.tflite", "zoo/*.tflite")
        for p in (shared_dir() / "models").glob(pattern)
    )
]


def model_inputs(path) -> list[tuple[tuple[int, ...], np.dtype]]:
    """(shape, dtype) of each input as the file declares it (for models the engine does not load)."""
    import tflite

    from tests.tflite_builder import NP_DTYPES, TENSOR_TYPES

    names = {v: k for k, v in TENSOR_TYPES.items()}
    sg = tflite.Model.GetRootAs(path.read_bytes(), 0).Subgraphs(0)
    return [
        (
            tuple(sg.Tensors(sg.Inputs(k)).ShapeAsNumpy()),
            np.dtype(NP_DTYPES[names[sg.Tensors(sg.Inputs(k)).Type()]]),
        )
        for k in range(sg.InputsLength())
    ]


def random_inputs(specs, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        xs = []
        for shape, dtype in specs:
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                xs.append(rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype))
            else:
                xs.append(rng.standard_normal(shape).astype(dtype))
        sets.append(xs)
    return sets


def real_inputs(name: str, specs) -> list[list[np.ndarray]]:
    """Inputs from the shared data: MNIST test digits, the person BMPs (bytes read as int8, as TFLite
    Micro's own test does), photos for image models (int8: pixel - 128)."""
    data = shared_dir() / "data"
    (shape, dtype), *_ = specs
    if name in ("mnist_uint8.tflite", "zoo/keras_lstm_mnist_ptq.tflite"):
        with gzip.open(data / "mnist/t10k-images-idx3-ubyte.gz") as f:
            images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, *shape)
        return [[img.astype(dtype)] for img in images[:20]]
    if name == "person_detect_int8.tflite":
        return [
            [
                np.frombuffer(Image.open(data / f"person/{n}.bmp").tobytes(), np.uint8)
                .view(np.int8)
                .reshape(shape)
            ]
            for n in ("person", "no_person")
        ]
    if len(specs) == 1 and len(shape) == 4 and shape[-1] in (1, 3) and shape[1] >= 32 and dtype.kind in "iu":
        out = []
        for n in ("cat.bmp", "grace_hopper.bmp", "pets.jpg"):
            img = (
                Image.open(data / "zoo" / n)
                .convert("RGB" if shape[-1] == 3 else "L")
                .resize((shape[2], shape[1]))
            )
            px = np.asarray(img, np.int16).reshape(shape)
            out.append([(px - 128).astype(dtype) if dtype == np.int8 else px.astype(dtype)])
        return out
    return []


@pytest.mark.parametrize("name", MODELS)
def test_model_equals_tflite_micro(name):
    path = shared_dir() / "models" / name
    specs = model_inputs(path)
    try:
        m = engine.load(path, numerics="tflm")
    except engine.EngineError as e:
        if "TFLite Micro cannot run it" not in str(e):
            pytest.skip(f"the engine does not run this model: {str(e)[:200]}")
        with pytest.raises(OracleError):  # the refusal is TFLite Micro's own
            micro_run_many(path, random_inputs(specs, 1, 0))
        return
    sets = random_inputs(specs, N_RANDOM, 1) + real_inputs(name, specs)
    refs = micro_run_many(path, sets, preserve_all=True)
    for xs, ref in zip(sets, refs):
        assert_every_tensor_equal(m, xs, [ref])
    reference = engine.load(path)
    differ = sum(
        any(not np.array_equal(a, b) for a, b in zip(reference.run(xs), ref["outputs"]))
        for xs, ref in zip(sets, refs)
    )
    print(f"\n{name}: tflm 0/{len(sets)}, reference {differ}/{len(sets)} inputs differ from TFLite Micro")


@pytest.mark.slow  # (30 s: the other TFLite Micro model tests run in the default suite; CI's time)
def test_mnist_all_10000_equal_tflite_micro():
    """All 10,000 MNIST test images: numerics="tflm" equals TFLite Micro on every output (the reference
    profile differs on 3 of them), and top-1 is 98.80 % in both."""
    data = shared_dir() / "data/mnist"
    with gzip.open(data / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(data / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    path = shared_dir() / "models/mnist_uint8.tflite"
    want = np.concatenate([r["outputs"][0] for r in micro_run_many(path, [[img[None]] for img in images])])
    got = engine.load(path, numerics="tflm").run(images)[0]
    assert np.array_equal(got, want), f"{np.count_nonzero(np.any(got != want, axis=1))} images differ"
    reference = engine.load(path).run(images)[0]
    assert np.count_nonzero(np.any(reference != want, axis=1)) == 3
    assert round(float(np.mean(got.argmax(1) == labels)) * 100, 2) == 98.80


def test_evaluate_compare_and_numerics(tmp_path):
    """scripts/evaluate.py --compare reference,tflm over 500 MNIST images and 30 random ad01 inputs, and
    --numerics tflm (the SSD reported as refused); the JSON says which profile ran."""
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
    spec = importlib.util.spec_from_file_location("evaluate_script", script)
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)

    ad01 = shared_dir() / "models/zoo/ad01_int8.tflite"
    argv = ["--compare", "reference,tflm", "--model", "mnist", "--limit", "500", "--tflite", str(ad01)]
    assert evaluate.main([*argv, "--random", "30", "--out-dir", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "compare.json").read_text())
    mnist, ad = doc["compare"]["mnist"], doc["compare"]["ad01_int8.tflite"]
    assert mnist["inputs"] == 500 and mnist["profiles"] == ["reference", "tflm"] and "accuracy" in mnist
    assert ad["inputs"] == 30 and ad["inputs_differ"] > 25 and ad["max_abs_diff"] >= 1
    out = tmp_path / "tflm"
    assert evaluate.main(["--numerics", "tflm", "--model", "ssd", "--no-plots", "--out-dir", str(out)]) == 0
    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["numerics"] == "tflm" and "TFLite Micro cannot run it" in doc["ssd"]["refused"]


def test_yolov8n_outputs_equal_tflite_micro():
    """The default run's share of YOLOv8n against TFLite Micro: 2 random inputs, every tensor (the slow
    test above takes 23 inputs)."""
    path = shared_dir() / "models/zoo/yolov8n_full_integer_quant.tflite"
    sets = random_inputs(model_inputs(path), 2, 7)
    refs = micro_run_many(path, sets, preserve_all=True)
    m = engine.load(path, numerics="tflm")
    for xs, ref in zip(sets, refs):
        assert_every_tensor_equal(m, xs, [ref])
