"""python -m engine.inspect: the layer listing, one element's integer computation, the LiteRT comparison."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine
from engine import inspect as ins
from tests.oracle import micro_run_many, reference_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mnist(models_dir) -> Path:
    return models_dir / "mnist_uint8.tflite"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine.inspect", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_listing_mnist(mnist, capsys):
    assert ins.main([str(mnist)]) == 0
    text = capsys.readouterr().out
    assert "total MACs: 2,883,264 (2.88 M)" in text
    for op in ("QUANTIZE", "DEPTHWISE_CONV_2D", "CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"):
        assert op in text
    assert "M0" in text and "shift" in text

    assert ins.main([str(mnist), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total_macs"] == 2_883_264
    layers = {r["index"]: r for r in doc["layers"]}
    conv = layers[2]
    assert conv["op"] == "CONV_2D" and conv["macs"] == 24 * 24 * 32 * 3 * 3 * 16
    m = conv["multiplier"]
    assert m["channels"] == 32 and len(m["M0"]) == len(m["shift"]) == 32
    assert all(2**30 <= v < 2**31 for v in m["M0"])
    weights = conv["inputs"][1]
    assert weights["role"] == "weights" and weights["scale"]["count"] == 32
    # M0 * 2^(shift - 31) is M to 31 bits
    for real, m0, shift in zip(m["M"], m["M0"], m["shift"]):
        assert abs(m0 * 2.0 ** (shift - 31) - real) <= real * 2**-30


@pytest.mark.parametrize(
    ("layer", "element"),
    [(2, (0, 5, 7, 3)), (2, (0, 23, 0, 31)), (1, (0, 0, 25, 9)), (4, (0, 17)), (5, (0, 3))],
)
def test_element_matches_reference(mnist, layer, element):
    m = engine.load(mnist)
    x = ins.make_inputs(m, seed=5)
    steps = ins.element_steps(m, layer, element, x)
    ref = reference_run(mnist, x, preserve_all=True)
    name = m.graph.tensors[m.graph.ops[layer].outputs[0]].name
    want = int(ref["tensors"][name][element])
    assert steps["final"] == want == steps["engine"]
    assert steps["equal"]
    # the shown steps chain: acc + bias -> rescale (fixed point, or double for FULLY_CONNECTED) -> + zp -> clamp
    assert steps["acc_plus_bias"] == steps["acc"] + steps["bias"]
    if m.graph.ops[layer].type == "FULLY_CONNECTED":
        assert steps["requantize"] == "double" and "tflite_micro" in steps
        assert steps["scaled"] == ins.round_half_away(steps["acc_plus_bias"] * steps["M"])
    else:
        assert steps["requantize"] == "fixed-point" and steps["scaled"] == steps["divided"]
    assert steps["final"] == min(
        max(
            steps["scaled"] + m.graph.tensors[m.graph.ops[layer].outputs[0]].zero_point[0], steps["clamp"][0]
        ),
        steps["clamp"][1],
    )
    assert f"= {want}" in steps["text"]


def test_fully_connected_double_rounding_vs_micro(mnist, shared, capsys):
    """MNIST test image 659: the reference FULLY_CONNECTED rounds double(acc) * M = 17.49973 to 17, while
    TFLite Micro's fixed-point multiplier gives 18 (output 9 vs 10 at element (0, 2) of dense_1)."""
    with gzip.open(shared / "data/mnist/t10k-images-idx3-ubyte.gz") as f:
        img = np.frombuffer(f.read(), np.uint8, offset=16 + 659 * 28 * 28, count=28 * 28).reshape(
            1, 28, 28, 1
        )
    m = engine.load(mnist)
    (layer,) = [
        op.index for op in m.graph.ops if m.graph.tensors[op.outputs[0]].name == "sequential/dense_1/BiasAdd"
    ]
    assert m.graph.ops[layer].type == "FULLY_CONNECTED"
    ref = reference_run(mnist, [img], preserve_all=True)["tensors"]["sequential/dense_1/BiasAdd"]
    steps = ins.element_steps(m, layer, (0, 2), [img])
    assert steps["final"] == int(ref[0, 2]) == steps["engine"] == 9
    assert steps["requantize"] == "double" and steps["tflite_micro_differs"]
    assert steps["tflite_micro"]["final"] == 10
    # and TFLite Micro's interpreter does give 10 there
    micro = micro_run_many(mnist, [[img]], preserve_all=True)[0]["tensors"]["sequential/dense_1/BiasAdd"]
    assert int(micro[0, 2]) == steps["tflite_micro"]["final"]
    text = steps["text"]
    assert "rescale in double" in text and "TFLITE MICRO DIFFERS: it gives 10" in text
    # another element of this image: TFLite Micro agrees, and the tool says so
    same = ins.element_steps(m, layer, (0, 1), [img])
    assert same["final"] == int(ref[0, 1]) and not same["tflite_micro_differs"]
    assert "TFLite Micro gives the same value" in same["text"]

    # the layer listing labels the double multiplier and TFLite Micro's (M0, shift)
    assert ins.main([str(mnist), "--layer", str(layer)]) == 0
    listing = capsys.readouterr().out
    assert "M = s_in*s_w/s_out (double)" in listing and "TFLite Micro would use M0" in listing
    assert ins.main([str(mnist), "--layer", str(layer), "--json"]) == 0
    mult = json.loads(capsys.readouterr().out)["layers"][0]["multiplier"]
    assert mult["requantize"] == "double" and mult["M"][2] == steps["M"] and mult["M0"][2] == steps["M0"]


def test_element_from_image_cli(mnist, shared, tmp_path, capsys):
    with gzip.open(shared / "data/mnist/t10k-images-idx3-ubyte.gz") as f:
        img = np.frombuffer(f.read(), np.uint8, offset=16, count=28 * 28).reshape(28, 28)
    png = tmp_path / "digit.png"
    Image.fromarray(img).save(png)
    assert (
        ins.main([str(mnist), "--layer", "2", "--element", "0,10,12,7", "--image", str(png), "--json"]) == 0
    )
    steps = json.loads(capsys.readouterr().out)
    ref = reference_run(mnist, [img.reshape(1, 28, 28, 1)], preserve_all=True)
    assert steps["final"] == int(ref["tensors"]["sequential/conv2d_1/Relu"][0, 10, 12, 7])


def test_compare_litert_mnist(mnist, litert):
    proc = cli(str(mnist), "--compare-litert", "--seed", "11")
    assert proc.returncode == 0, proc.stderr
    assert "no layer differs" in proc.stdout
    assert "DIFFERS" not in proc.stdout
    assert proc.stdout.count(" equal (") == 8  # one line per layer output


def test_errors_are_one_line(mnist, tmp_path):
    proc = cli(str(mnist), "--layer", "99", "--element", "0,0")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "layer" in proc.stderr
    proc = cli(str(mnist), "--layer", "2", "--element", "0,99,0,0")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "shape" in proc.stderr
    proc = cli(str(tmp_path / "missing.tflite"))
    assert proc.returncode == engine.ModelFormatError.exit_code and proc.stderr.count("\n") == 1
    proc = cli(str(mnist), "--layer", "2", "--element", "0,1,1,1", "--image", str(tmp_path / "none.png"))
    assert proc.returncode == engine.ImageError.exit_code and proc.stderr.count("\n") == 1


def test_compare_litert_ssd(models_dir, shared, litert):
    """inspect --compare-litert on the SSD with an image: every layer output compared, all equal."""
    path = models_dir / "ssd_mobilenet_v1_coco_uint8.tflite"
    proc = cli(str(path), "--compare-litert", "--image", str(shared / "data/ssd/table.jpg"), "--json")
    assert proc.returncode == 0, proc.stderr
    layers = json.loads(proc.stdout)["layers"]
    assert len(layers) == 67 and all(r["status"] == "equal" and r["differing"] == 0 for r in layers)


def test_input_npy_and_resize(mnist, tmp_path, capsys):
    """--input-npy feeds the tensor as is; --resize picks the Pillow filter for --image: the element's
    value equals the reference's for the input each option makes."""
    x = np.random.default_rng(8).integers(0, 256, (1, 28, 28, 1)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    big = np.random.default_rng(9).integers(0, 256, (61, 47)).astype(np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    element = ["--layer", "2", "--element", "0,10,12,7", "--json"]
    inputs = {"npy": (["--input-npy", str(tmp_path / "x.npy")], x)}
    for name, flt in (("nearest", Image.NEAREST), ("bicubic", Image.BICUBIC)):
        small = np.asarray(Image.fromarray(big).resize((28, 28), flt), np.uint8).reshape(1, 28, 28, 1)
        inputs[name] = (["--image", str(tmp_path / "big.png"), "--resize", name], small)
    assert not np.array_equal(inputs["nearest"][1], inputs["bicubic"][1])
    for name, (args, feed) in inputs.items():
        assert ins.main([str(mnist), *element, *args]) == 0
        steps = json.loads(capsys.readouterr().out)
        ref = reference_run(mnist, [feed], preserve_all=True)
        assert steps["final"] == int(ref["tensors"]["sequential/conv2d_1/Relu"][0, 10, 12, 7]), name
