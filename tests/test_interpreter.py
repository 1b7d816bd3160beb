"""engine.Interpreter as a drop-in for LiteRT's Interpreter: one user script, run unchanged against both."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.interpreter import Interpreter
from tests import oracle
from tests.oracle import reference_run

ROOT = Path(__file__).resolve().parents[1]


def user_script(Interpreter, model_path: str, x: np.ndarray, batch: int | None = None) -> dict:
    """A typical LiteRT user script; `Interpreter` is whichever class (or factory) is under test."""
    interpreter = Interpreter(model_path=model_path, num_threads=2)
    if batch is not None:
        d = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(d["index"], [batch, *d["shape"][1:]])
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()
    output_details = interpreter.get_output_details()
    interpreter.set_tensor(input_details[0]["index"], x)
    interpreter.invoke()
    output = interpreter.get_tensor(output_details[0]["index"])
    return {
        "input_details": input_details,
        "output_details": output_details,
        "tensor_details": interpreter.get_tensor_details(),
        "output": output,
    }


# The same script under LiteRT (reference kernels), in a child process: BUILTIN_REF can abort a process.
_LITERT_RUN = """
import functools, pickle, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tests.test_interpreter import user_script
model, xfile, outfile, batch = sys.argv[1:5]
factory = functools.partial(Interpreter, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
res = user_script(factory, model, np.load(xfile), int(batch) if batch != "-" else None)
with open(outfile, "wb") as f:
    pickle.dump(res, f)
"""


def litert_script(tmp_path: Path, model_path: Path, x: np.ndarray, batch: int | None = None) -> dict:
    oracle.require("reference")
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "litert.pkl"
    args = [str(model_path), str(tmp_path / "x.npy"), str(out), str(batch) if batch else "-"]
    proc = subprocess.run(
        [sys.executable, "-c", _LITERT_RUN, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out, "rb") as f:
        return pickle.load(f)


def assert_same_details(mine: dict, theirs: dict) -> None:
    assert list(mine) == list(theirs)  # same keys, same order
    assert mine["name"] == theirs["name"] and mine["index"] == theirs["index"]
    for key in ("shape", "shape_signature"):
        assert mine[key].dtype == theirs[key].dtype == np.int32
        assert np.array_equal(mine[key], theirs[key]), (mine["name"], key, mine[key], theirs[key])
    assert mine["dtype"] is theirs["dtype"]
    assert mine["quantization"] == theirs["quantization"]
    assert [type(v) for v in mine["quantization"]] == [type(v) for v in theirs["quantization"]]
    qm, qt = mine["quantization_parameters"], theirs["quantization_parameters"]
    assert list(qm) == list(qt)
    for key in ("scales", "zero_points"):
        assert qm[key].dtype == qt[key].dtype and np.array_equal(qm[key], qt[key]), (mine["name"], key)
    assert qm["quantized_dimension"] == qt["quantized_dimension"]
    assert mine["sparsity_parameters"] == theirs["sparsity_parameters"]


def random_input(model_path: Path, batch: int, seed: int) -> np.ndarray:
    t = engine.load(model_path).inputs[0]
    info = np.iinfo(t.dtype)
    rng = np.random.default_rng(seed)
    return rng.integers(info.min, int(info.max) + 1, size=(batch, *t.shape[1:])).astype(t.dtype)


@pytest.mark.parametrize(
    ("name", "batch"), [("mnist_uint8", None), ("mnist_uint8", 4), ("micro_speech_int8", None)]
)
def test_user_script_runs_unchanged(models_dir, tmp_path, litert, name, batch):
    path = models_dir / f"{name}.tflite"
    x = random_input(path, batch or 1, seed=7)
    theirs = litert_script(tmp_path, path, x, batch)
    mine = user_script(Interpreter, str(path), x, batch)
    for key in ("input_details", "output_details", "tensor_details"):
        assert len(mine[key]) == len(theirs[key])
        for a, b in zip(mine[key], theirs[key]):
            assert_same_details(a, b)
    assert mine["output"].dtype == theirs["output"].dtype
    assert mine["output"].shape == theirs["output"].shape
    np.testing.assert_array_equal(mine["output"], theirs["output"])


def test_preserve_all_tensors_reads_every_intermediate(models_dir):
    path = models_dir / "mnist_uint8.tflite"
    x = random_input(path, 1, seed=3)
    ref = reference_run(path, [x], preserve_all=True)
    it = Interpreter(model_path=path, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    checked = 0
    for d in it.get_tensor_details():
        if d["name"] in ref["tensors"]:
            np.testing.assert_array_equal(
                it.get_tensor(d["index"]), ref["tensors"][d["name"]], err_msg=d["name"]
            )
            checked += 1
    assert checked >= 8


@pytest.fixture
def hello(models_dir) -> Path:
    return models_dir / "hello_world_int8.tflite"


def test_errors_are_engine_errors(hello):
    with pytest.raises(engine.InputError):
        Interpreter()
    with pytest.raises(engine.InputError):
        Interpreter(model_path=hello, num_threads=0)
    with pytest.raises(engine.ModelFormatError):
        Interpreter(model_content=b"not a model at all")
    it = Interpreter(model_path=hello)
    (inp,) = it.get_input_details()
    (out,) = it.get_output_details()
    with pytest.raises(engine.InputError, match="allocate_tensors"):
        it.set_tensor(inp["index"], np.zeros((1, 1), np.int8))
    with pytest.raises(engine.InputError, match="allocate_tensors"):
        it.invoke()
    it.allocate_tensors()
    with pytest.raises(engine.InputError, match="dtype|expected int8"):
        it.set_tensor(inp["index"], np.zeros((1, 1), np.uint8))
    with pytest.raises(engine.InputError, match="shape"):
        it.set_tensor(inp["index"], np.zeros((2, 1), np.int8))
    with pytest.raises(engine.InputError, match="not an input"):
        it.set_tensor(out["index"], np.zeros((1, 1), np.int8))
    with pytest.raises(engine.InputError, match="index"):
        it.get_tensor(999)
    with pytest.raises(engine.UnsupportedError, match="batch"):
        it.resize_tensor_input(inp["index"], [1, 2])
    it.set_tensor(inp["index"], np.array([[10]], np.int8))
    it.invoke()
    intermediate = next(op.outputs[0] for op in it.model.graph.ops if op.outputs[0] != out["index"])
    with pytest.raises(engine.InputError, match="experimental_preserve_all_tensors"):
        it.get_tensor(intermediate)


def test_get_tensor_returns_a_copy_and_resize_changes_batch(hello):
    it = Interpreter(model_path=hello, num_threads=64)  # clamped to numba's thread count
    (inp,) = it.get_input_details()
    assert list(inp["shape_signature"]) == [-1, 1]
    it.resize_tensor_input(inp["index"], [3, 1])
    assert list(it.get_input_details()[0]["shape"]) == [3, 1]
    it.allocate_tensors()
    assert list(it.get_output_details()[0]["shape"]) == [3, 1]
    x = np.array([[-128], [0], [127]], np.int8)
    it.set_tensor(inp["index"], x)
    it.invoke()
    index = it.get_output_details()[0]["index"]
    want = reference_run(hello, [x], preserve_all=False)["outputs"][0]
    y = it.get_tensor(index)
    np.testing.assert_array_equal(y, want)
    y += 1  # a copy: the interpreter's own buffer is untouched
    np.testing.assert_array_equal(it.get_tensor(index), want)
    # tensor() gives a live view: writing the input through it is what invoke() sees
    it.tensor(inp["index"])()[...] = x[::-1]
    it.invoke()
    np.testing.assert_array_equal(it.get_tensor(index), want[::-1])
