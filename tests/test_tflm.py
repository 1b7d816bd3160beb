"""numerics="tflm" against TFLite Micro's own interpreter, one-op graphs, bit for bit.

For every op the engine runs in int8, a graph of many variants goes through TFLite Micro (subprocess)
and through the engine in both profiles: "tflm" must equal TFLite Micro everywhere; the "reference"
profile must differ from it exactly where the two runtimes' kernels differ (which proves each
difference, and that the test can tell them apart) and nowhere else. TFLite Micro does not resize
inputs: every graph here has batch 1 and the exact output shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.oracle import micro_run_many
from tests.test_ops_elementwise import F32, Net, all_bytes, qparams

pytestmark = pytest.mark.usefixtures("tflm")
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def versus_tflm(net: Net, input_sets: list[list[np.ndarray]]) -> dict[str, list[int]]:
    """{label: [values where the tflm profile differs from TFLite Micro, same for the reference profile]}."""
    model = net.build()
    wants = micro_run_many(model, input_sets)
    profiles = [engine.load(model, numerics="tflm"), engine.load(model, numerics="reference")]
    counts = {label: [0, 0] for label in net.labels}
    for xs, want in zip(input_sets, wants):
        for k, m in enumerate(profiles):
            for label, got, w in zip(net.labels, m.run(list(xs)), want["outputs"]):
                assert got.shape == w.shape and got.dtype == w.dtype, f"{label}: {got.shape} vs {w.shape}"
                counts[label][k] += int(np.count_nonzero(got != w))
    return counts


def check_tflm(net: Net, input_sets: list[list[np.ndarray]], differs: bool) -> dict[str, list[int]]:
    """tflm equals TFLite Micro on every output; the reference profile differs somewhere iff `differs`."""
    counts = versus_tflm(net, input_sets)
    bad = {k: v[0] for k, v in counts.items() if v[0]}
    assert not bad, f"numerics='tflm' differs from TFLite Micro: {bad}"
    ref = {k: v[1] for k, v in counts.items() if v[1]}
    if differs:
        assert ref, "the reference profile equals TFLite Micro here: nothing proves the difference"
    else:
        assert not ref, f"the reference profile differs from TFLite Micro: {ref}"
    print({k: v[1] for k, v in counts.items()})
    return counts


def random_sets(net: Net, seed: int, n: int = 3) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [net.random_inputs(rng, 1) for _ in range(n)]


def int8_scales(rng, n: int) -> list[tuple[float, int]]:
    return [qparams(rng, "int8") for _ in range(n)]


# --- FULLY_CONNECTED: fixed point in TFLite Micro, double in the reference --------------------------------


@pytest.mark.parametrize("per_channel", [False, True])
def test_fully_connected(per_channel):
    rng = np.random.default_rng(1 + per_channel)
    net = Net()
    for n, (rows, depth, units) in enumerate([(1, 64, 10), (3, 17, 33), (2, 250, 7), (1, 1, 5), (4, 40, 64)]):
        s_in, zp_in = qparams(rng, "int8", -2, 0)
        w = rng.integers(-127, 128, size=(units, depth)).astype(np.int8)
        scales = [float(F32(10 ** rng.uniform(-3, -1))) for _ in range(units if per_channel else 1)]
        net.tensors.append(
            {"name": f"w{n}", "shape": [units, depth], "dtype": "int8", "data": w, "scale": scales,
             "zero_point": [0] * len(scales), "quantized_dimension": 0}
        )  # fmt: skip
        wi = len(net.tensors) - 1
        bias = rng.integers(-5000, 5000, size=units).astype(np.int32)
        net.tensors.append(
            {"name": f"b{n}", "shape": [units], "dtype": "int32", "data": bias,
             "scale": [float(F32(s_in) * F32(s)) for s in scales], "zero_point": [0] * len(scales)}
        )  # fmt: skip
        bi = len(net.tensors) - 1
        s_out = float(F32(s_in * float(np.mean(scales)) * 60 * np.sqrt(depth)))
        x = net.input([1, rows, depth], "int8", s_in, zp_in)  # FC flattens: rows of depth
        y = net.tensor([rows, units], "int8", s_out, int(rng.integers(-128, 128)))
        act = ACTS[n % 4]
        net.op(
            "FULLY_CONNECTED",
            [x, wi, bi],
            [y],
            f"FC {rows}x{depth}->{units} {act}",
            fused_activation_function=act,
        )
    check_tflm(net, random_sets(net, 3, 40), differs=True)


# --- ADD / SUB / MUL: every pair of int8 values ---------------------------------------------------------


# (scales, zero points) of input 1, input 2, output where the two runtimes' tables differ (found by
# computing both; most quantizations give equal tables, which the random variants check)
PINNED = {
    "MUL": [
        ([0.001261252211406827, 0.14474135637283325, 0.0016805866034701467], [-29, -26, -39]),
        ([0.3388636112213135, 0.0587703138589859, 0.1558321863412857], [18, -27, 100]),
        ([0.031023893505334854, 0.001419084146618843, 0.0009927379433065653], [31, -59, -87]),
    ],
    "SUB": [  # the first: negated multiplier vs subtraction (1 in 20,000 random quantizations differs)
        ([0.15103717148303986, 0.10250843316316605, 0.07208780944347382], [36, -43, 72]),
        # multipliers in float32 (as sub_common.cc reads) vs double: TFLite Micro gives the double results
        ([0.003392560640349984, 0.10762516409158707, 0.11828785389661789], [6, 109, -68]),
        ([0.20602934062480927, 0.04907376319169998, 0.13880659639835358], [-114, -22, -47]),
    ],
    "ADD": [],
    "LOGISTIC": [(0.007738733198493719, -45), (0.0978664755821228, -24), (0.05583343654870987, 46)],
    "TANH": [(0.02011730708181858, 75), (0.003360776463523507, -85), (0.0048331874422729015, -91)],
}


def binary_net(op: str, seed: int, configs: int = 8) -> tuple[Net, list[np.ndarray]]:
    """(configs random + the pinned quantizations) x every (a, b) int8 pair, as two [1, 65536] inputs
    (no broadcast) per variant."""
    rng = np.random.default_rng(seed)
    net = Net()
    a_all = np.repeat(all_bytes("int8", [256]), 256).reshape(1, -1)
    b_all = np.tile(all_bytes("int8", [256]), 256).reshape(1, -1)
    xs = []
    variants = []
    for k in range(configs):
        (s1, z1), (s2, z2), (so, zo) = int8_scales(rng, 3)
        if op == "MUL":  # an output scale near the product keeps outputs off the clamps
            so = float(F32(s1 * s2 * 10 ** rng.uniform(-0.5, 1.5)))
        variants.append(((s1, s2, so), (z1, z2, zo), ACTS[k % 4]))
    variants += [(tuple(s), tuple(z), "NONE") for s, z in PINNED[op]]
    for (s1, s2, so), (z1, z2, zo), act in variants:
        a, b = net.input([1, 65536], "int8", s1, z1), net.input([1, 65536], "int8", s2, z2)
        out = net.tensor([1, 65536], "int8", so, zo)
        net.op(
            op,
            [a, b],
            [out],
            f"{op} scales={[s1, s2, so]} zps={[z1, z2, zo]} {act}",
            fused_activation_function=act,
        )
        xs += [a_all, b_all]
    return net, xs


def test_mul_multiplier_in_double():
    """TFLite Micro's MUL takes s1 * s2 / s_out in double (mul_common.cc), the reference in float32."""
    net, xs = binary_net("MUL", 3)
    check_tflm(net, [xs], differs=True)


def test_sub_subtracts_rescaled_inputs():
    """TFLite Micro's SUB subtracts the two rescaled inputs (reference_ops::Sub); the reference runs the
    ADD kernel with input 2's multiplier negated. Both take ADD's double multipliers."""
    net, xs = binary_net("SUB", 2)
    check_tflm(net, [xs], differs=True)


def test_add_equal():
    net, xs = binary_net("ADD", 1)
    check_tflm(net, [xs], differs=False)


# --- LOGISTIC / TANH: gemmlowp fixed point in TFLite Micro, float tables in the reference -------------------


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_logistic_tanh_fixed_point(op):
    rng = np.random.default_rng(5)
    net = Net()
    s_out, zp_out = (1 / 256, -128) if op == "LOGISTIC" else (1 / 128, 0)
    for s_in, zp_in in [qparams(rng, "int8", -2.5, 0) for _ in range(12)] + PINNED[op]:
        x = net.input([1, 256], "int8", s_in, zp_in)
        net.op(op, [x], [net.tensor([1, 256], "int8", s_out, zp_out)], f"{op} s_in={s_in} zp_in={zp_in}")
    check_tflm(net, [[all_bytes("int8", [1, 256]) for _ in net.inputs]], differs=True)
