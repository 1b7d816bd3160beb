"""numerics="litert": LiteRT's default interpreter (XNNPACK delegate + optimized builtin kernels, x86),
the profile's plumbing, the oracle and the delegate's partitioning (engine/profiles/litert.py)."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.errors import InputError, UnsupportedError
from engine.profiles import PROFILES
from tests.harness import Net
from tests.oracle import litert_run, require


def test_profile_is_known_everywhere():
    assert "litert" in PROFILES and PROFILES["litert"].name == "litert"
    path = engine.model_file("hello_world")
    m = engine.load(path, numerics="litert")
    assert m.numerics == "litert" and "numerics='litert'" in repr(m)
    it = engine.Interpreter(model_path=str(path), numerics="litert")
    it.allocate_tensors()
    with pytest.raises(InputError):
        engine.load(path, numerics="xnnpack")


def _one_conv(bias: bool, op: str = "DEPTHWISE_CONV_2D") -> Net:
    net = Net()
    x = net.input([1, 6, 6, 4], "int8", 0.05, 3)
    w = net.const(np.arange(36, dtype=np.int8).reshape(1, 3, 3, 4), "int8", 0.01, 0)
    inputs = [x, w]
    if bias:
        inputs.append(net.const(np.arange(4, dtype=np.int32), "int32", 0.0005, 0))
    out = net.tensor([1, 4, 4, 4], "int8", 0.1, -2)
    net.op(op, inputs, [out], "dw", padding="VALID", stride_h=1, stride_w=1, depth_multiplier=1)
    return net


def test_depthwise_without_bias_is_refused():
    """LiteRT's default interpreter dies (SIGSEGV) on a quantized DEPTHWISE_CONV_2D without bias (the
    delegate refuses it, the builtin kernel crashes): the profile refuses the model instead."""
    with pytest.raises(UnsupportedError, match="without bias"):
        engine.load(_one_conv(False).build(), numerics="litert")
    engine.load(_one_conv(True).build(), numerics="litert")


def test_oracle_exposes_partition_boundaries():
    """The default interpreter's oracle returns the delegated op indices. Two chained convolutions are one
    partition, but with experimental_preserve_all_tensors LiteRT gives each op a partition of its own
    (measured: two DELEGATE nodes instead of one), so that the middle tensor is readable too."""
    require("litert")
    net = Net()
    x = net.input([1, 5, 5, 2], "int8", 0.05, 0)
    w = net.const(np.ones((2, 1, 1, 2), np.int8), "int8", 0.01, 0)
    b = net.const(np.zeros(2, np.int32), "int32", 0.0005, 0)
    mid = net.tensor([1, 5, 5, 2], "int8", 0.02, 0, name="mid")
    out = net.tensor([1, 5, 5, 2], "int8", 0.02, 0, name="out")
    net.ops.append(
        {
            "op": "CONV_2D",
            "inputs": [x, w, b],
            "outputs": [mid],
            "options": {"padding": "SAME", "stride_h": 1, "stride_w": 1},
        }
    )
    net.op("CONV_2D", [mid, w, b], [out], "second", padding="SAME", stride_h=1, stride_w=1)
    r = litert_run(net.build(), [np.ones((1, 5, 5, 2), np.int8)])
    assert r["delegated"] == [0, 1]
    assert "out" in r["tensors"] and "mid" in r["tensors"]
    assert litert_run(net.build(), [np.ones((1, 5, 5, 2), np.int8)], preserve_all=False)["delegated"] == [
        0,
        1,
    ]


def test_inspect_shows_litert_arithmetic(tmp_path, capsys):
    """A delegated CONV_2D with s = 1/2: an element on a tie, where XNNPACK rounds to even and the
    reference away from zero. inspect shows the fp32 steps, LiteRT's value (its own interpreter's) beside
    the other profiles', and says they disagree."""
    import json

    from engine import inspect as ins
    from tests.test_litert_conv import one_op

    require("litert")
    path = tmp_path / "conv.tflite"
    path.write_bytes(one_op("CONV_2D", "int8", s_in=0.5, s_w=0.25, s_out=0.25).build())
    x = np.random.default_rng(0).integers(-128, 128, (1, 5, 5, 6)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    ref, lit = engine.load(path).run(x)[0], engine.load(path, numerics="litert").run(x)[0]
    want = litert_run(path.read_bytes(), [x])["outputs"][0]
    assert (lit == want).all()
    element = tuple(int(i) for i in np.argwhere(ref != lit)[0])
    args = [
        str(path),
        "--layer",
        "0",
        "--element",
        ",".join(map(str, element)),
        "--input",
        str(tmp_path / "x.npy"),
    ]
    assert ins.main([*args, "--numerics", "litert", "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)
    assert steps["profiles"]["litert"] == steps["litert"] == int(want[element]) == steps["engine"]
    assert steps["profiles"]["reference"] == int(ref[element]) != steps["litert"] and steps["profiles_differ"]
    assert ins.main(args) == 0
    text = capsys.readouterr().out
    assert "XNNPACK delegate takes this layer" in text and "round half to even" in text
    assert "LITERT DIFFERS from the reference kernels" in text
