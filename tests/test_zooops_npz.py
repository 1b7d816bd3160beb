"""TRANSPOSE_CONV and BATCH_MATMUL survive the .npz export (scripts/export_tflite.py): their options
(padding, strides, fused activation, adj_x / adj_y), constants (output_shape, int64 biases) and
quantization come back the same, and the exported model equals the reference kernels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
from tests.harness import check, run_sets
from tests.test_ops_batch_matmul import bmm_net, input_sets
from tests.test_ops_transpose_conv import tconv_net

ROOT = Path(__file__).resolve().parents[1]
NETS = {
    **{
        f"tconv {s}": (lambda s=s: tconv_net(s, 2)) for s in ("uint8", "int8_per_channel", "int16", "float32")
    },
    **{f"bmm {d}": (lambda d=d: bmm_net(d, 2)) for d in ("float32", "int8", "int16")},
}


def _export(src: Path, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts/export_tflite.py"), str(src), str(out)],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0 and out.exists(), p.stderr


@pytest.mark.parametrize("name", list(NETS))
def test_npz_round_trip(name, tmp_path):
    net = NETS[name]()
    model = net.build()
    src = tmp_path / "model.tflite"
    src.write_bytes(model)
    out = tmp_path / "model.npz"
    _export(src, out)
    a, b = engine.load(src), engine.load(out)
    for oa, ob in zip(a.graph.ops, b.graph.ops, strict=True):
        assert (oa.type, oa.inputs, oa.outputs, oa.options) == (ob.type, ob.inputs, ob.outputs, ob.options)
    for ta, tb in zip(a.graph.tensors, b.graph.tensors, strict=True):
        assert ta.dtype == tb.dtype and tuple(ta.shape) == tuple(tb.shape), ta.name
        assert np.array_equal(ta.scale, tb.scale) and np.array_equal(ta.zero_point, tb.zero_point), ta.name
    sets = input_sets(net, 90) if name.startswith("bmm") else run_sets(net, 90, batches=(2,))
    check(net, sets)  # the .tflite equals the reference ...
    for xs in sets:  # ... and the .npz equals the .tflite
        for ga, gb in zip(a.run(list(xs)), b.run(list(xs)), strict=True):
            assert ga.dtype == gb.dtype and np.array_equal(ga, gb)
