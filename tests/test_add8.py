"""The vector ADD/SUB (engine/kernels/add8.py) against the oracles, bit for bit, on every pair of byte values.

Each graph holds quantizations picked (by a search over random and power-of-two scales) so that together
they take every form of the kernel: bytes, split, int16; ties read or not; inputs swapped or not; and one
the kernel cannot reproduce (an output zero point at the top of the range, where a tie below zero would
read a saturated sum), which keeps the 64 Ki table. Each test asserts which forms its graph took (recorded
at prepare), so that it cannot pass on the table alone. Same shapes (every pair, a masked tail, batch 2),
per-channel operands along the last axis (either input, rows of 96 and of 40: a masked tail), fused
activations, all three profiles.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.kernels import add8
from engine.numerics.gemmlowp import byte_values
from engine.ops.add import Rescale, add_table, rescaled, vector_constants
from tests.harness import F32, Net, check, qparams, run_sets

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
BYTES, SPLIT, WIDE = add8.BYTES, add8.SPLIT, add8.WIDE

# (dtype, scales, zero points, fused activation) per op, for numerics "reference"; the comment: the form the
# kernel takes, ties read (t), inputs swapped (s)
REFERENCE = {
    "ADD": [
        ("int8", [0.2387733, 0.6214342, 1.9061073], [126, -9, -73], "RELU6"),  # bytes
        ("int8", [0.00390625, 0.0078125, 0.0078125], [101, 20, 70], "NONE"),  # bytes t
        ("int8", [0.00390625, 0.03125, 0.0078125], [4, 110, -110], "RELU_N1_TO_1"),  # bytes t s
        ("int8", [0.003777517, 0.016986959, 0.005899887], [56, -34, -3], "RELU"),  # split
        ("int8", [0.0034523418, 0.00020024582, 0.0009417676], [11, 122, 118], "RELU_N1_TO_1"),  # split s
        ("int8", [0.023127621, 0.39458653, 0.1768765], [32, 55, 65], "NONE"),  # split t
        ("int8", [0.09403341, 0.053608175, 0.07975728], [119, -18, 95], "NONE"),  # split t s
        ("int8", [0.012128083, 0.02615881, 0.0061478033], [95, 41, -29], "RELU6"),  # int16
        ("int8", [0.60361683, 0.36347178, 0.21214007], [22, 53, 99], "NONE"),  # int16 t
        ("int8", [0.015625, 0.015625, 0.03125], [79, 121, 127], "RELU_N1_TO_1"),  # the table
        ("uint8", [0.0012795016, 0.001437682, 0.0010401837], [206, 234, 210], "RELU"),  # bytes
        ("uint8", [0.0010486875, 0.00023826462, 0.00071757194], [89, 1, 86], "RELU6"),  # bytes s
        ("uint8", [0.0017085973, 0.0134108085, 0.0038437024], [76, 128, 34], "RELU_N1_TO_1"),  # split
        ("uint8", [0.24615479, 0.19150808, 0.11346115], [210, 87, 71], "NONE"),  # int16
    ],
    "SUB": [
        ("int8", [0.0047382894, 0.0009912585, 0.010565395], [105, -127, -1], "RELU"),  # bytes
        ("int8", [0.03125, 0.015625, 0.03125], [-78, 38, -117], "RELU_N1_TO_1"),  # bytes t
        ("int8", [0.6829888, 0.26552188, 0.27399525], [16, 97, -12], "RELU6"),  # split s
        ("int8", [0.00390625, 0.03125, 0.00390625], [28, -99, -117], "RELU_N1_TO_1"),  # int16
        ("int8", [0.00390625, 0.03125, 0.03125], [-68, -82, 127], "NONE"),  # the table
        ("uint8", [0.03125, 0.0078125, 0.015625], [222, 119, 228], "NONE"),  # split t s
        ("uint8", [0.0078125, 0.00390625, 0.0078125], [90, 82, 114], "NONE"),  # bytes t s
        ("uint8", [0.00390625, 0.0078125, 0.00390625], [84, 216, 239], "RELU"),  # split
        ("uint8", [0.0058157905, 0.0037832775, 0.0046780696], [149, 141, 130], "RELU6"),  # bytes
        ("uint8", [0.00390625, 0.03125, 0.0078125], [112, 91, 61], "NONE"),  # split t
        ("uint8", [0.015625, 0.00390625, 0.0078125], [119, 46, 119], "RELU"),  # split s
        ("uint8", [0.0018879025, 0.0016925995, 0.0008785377], [230, 54, 245], "RELU_N1_TO_1"),  # int16 t
    ],
}


@pytest.fixture
def forms(monkeypatch) -> list:
    """The (form, ties, swapped) of every add8.fit at prepare from now on (None: the table stays)."""
    seen: list = []
    fit = add8.fit

    def recording_fit(*args, **kwargs):
        got = fit(*args, **kwargs)
        c = None if got is None else got.planes[add8.CONST]
        seen.append(None if got is None else (int(c[add8.FORM]), bool(c[add8.TIES]), got.swap))
        return got

    monkeypatch.setattr(add8, "fit", recording_fit)
    return seen


def _grid_net(op: str, configs: list, shape=(1, 263, 251)) -> tuple[Net, list[list[np.ndarray]]]:
    """One op per config on two inputs of `shape` (256 x 256 or more elements) holding every pair of raw bytes;
    input sets of batch 1 and (where the shape has a batch) 2."""
    net = Net()
    for dtype, s, z, act in configs:
        a, b = net.input(shape, dtype, s[0], z[0]), net.input(shape, dtype, s[1], z[1])
        net.op(
            op,
            [a, b],
            [net.tensor(shape, dtype, s[2], z[2])],
            f"{op} {dtype} {s} {z} {act}",
            fused_activation_function=act,
        )
    n = int(np.prod(shape))
    i = (np.arange(n) // 256 % 256).astype(np.uint8)
    j = (np.arange(n) % 256).astype(np.uint8)  # with i: every pair in the first 65,536 elements
    sets = []
    for batch in (1, 2) if shape[0] == 1 and len(shape) > 2 else (1,):
        xs = []
        for k in net.inputs:
            raw = np.stack([np.roll(i if len(xs) % 2 == 0 else j, m) for m in range(batch)]).reshape(
                batch, *shape[1:]
            )
            xs.append(raw.view(net.tensors[k]["dtype"]))
        sets.append(xs)
    return net, sets


def _require_vbmi() -> None:
    if not add8.SUPPORTED:
        pytest.skip("add8 needs AVX-512 VBMI")


@pytest.mark.usefixtures("litert")
@pytest.mark.parametrize("op", ["ADD", "SUB"])
def test_reference_forms(op, forms, kernel_build):
    """Same shapes, every pair of values, batch 1 and 2, a tail of 29 elements past the last 64."""
    _require_vbmi()
    net, sets = _grid_net(op, REFERENCE[op])
    check(net, sets)
    want = {(form, ties, swap) for form in (BYTES, SPLIT) for ties in (False, True) for swap in (False, True)}
    want |= {(WIDE, False, False), (WIDE, True, False), None}
    assert set(forms) == (want if op == "ADD" else want - {(BYTES, False, True)})  # the comments in REFERENCE


@pytest.mark.usefixtures("litert")
@pytest.mark.parametrize("op", ["ADD", "SUB"])
def test_reference_rows(op, forms, kernel_build, monkeypatch):
    """A per-channel operand along the last axis ([N, H, W, C] with [C] or [1, 1, 1, C], either input first):
    add8_rows, rows of 96, 40 and 5 (tiles of whole rows), a constant operand (batch 1 and 3) or an
    activation (batch 1: at batch 3 its [3, 1, 1, C] is not one row vector)."""
    _require_vbmi()
    rows = []
    pick = add8.add8_rows.pick
    monkeypatch.setattr(add8.add8_rows, "pick", lambda work: rows.append(work) or pick(work))
    nets = Net(), Net()  # constants, activations
    rng = np.random.default_rng(4)
    cases = [
        ([1, 12, 12, 96], [96], False),
        ([1, 12, 12, 96], [96], True),
        ([1, 9, 9, 40], [1, 1, 1, 40], True),
        ([1, 30, 40, 5], [1, 1, 1, 5], False),
    ]
    for k, (full, channel, first) in enumerate(cases):
        for c, (dtype, s, z, act) in enumerate(REFERENCE[op][k::4][:4]):
            net = nets[c % 2 if len(channel) == 4 else 0]
            a = net.input(full, dtype, s[0], z[0])
            if net is nets[0]:  # a constant, as in models
                b = net.const(rng.integers(0, 256, channel).astype(np.uint8).view(dtype), dtype, s[1], z[1])
            else:
                b = net.input(channel, dtype, s[1], z[1])
            label = f"{op} {dtype} {full} {channel} {first} {act}"
            out = net.tensor(full, dtype, s[2], z[2])
            net.op(op, [b, a] if first else [a, b], [out], label, fused_activation_function=act)
    check(nets[0], run_sets(nets[0], 3, batches=(1, 3)))
    check(nets[1], run_sets(nets[1], 5, batches=(1, 1)))
    assert len(rows) >= 12 and {BYTES, SPLIT} <= {f[0] for f in forms if f}


# TFLite Micro (int8): its ADD is the reference's, its SUB rescales both inputs and then subtracts
TFLM = {
    "ADD": [c for c in REFERENCE["ADD"] if c[0] == "int8"],
    "SUB": [c for c in REFERENCE["SUB"] if c[0] == "int8"]
    + [
        ("int8", [0.01973696, 0.0026471855, 0.016349465], [-126, -82, -90], "RELU"),
        ("int8", [0.0078125, 0.015625, 0.00390625], [-15, -6, 1], "NONE"),
    ],
}


@pytest.mark.usefixtures("tflm")
@pytest.mark.parametrize("op", ["ADD", "SUB"])
def test_tflm_forms(op, forms):
    """numerics="tflm" equals TFLite Micro on every pair of values, [1, 65573] (batch 1: TFLite Micro does
    not resize), each form of the kernel."""
    from tests.test_tflm import versus_tflm

    _require_vbmi()
    net, sets = _grid_net(op, TFLM[op], shape=(1, 65573))
    counts = versus_tflm(net, sets)
    assert not {k: v[0] for k, v in counts.items() if v[0]}
    taken = set(forms[: len(TFLM[op])])  # the tflm model is prepared first
    assert {(BYTES, False, False), (BYTES, True, False), (SPLIT, False, True), (WIDE, False, False)} <= taken


# XNNPACK's add (delegated scales), and a SUB it leaves to LiteRT's builtin kernel (the reference's arithmetic)
LITERT = {
    "ADD": [
        ("int8", [0.015625, 0.00390625, 0.015625], [-67, -55, -99], "NONE"),  # bytes s
        ("int8", [0.003777517, 0.016986959, 0.005899887], [56, -34, -3], "RELU"),  # split
        ("int8", [0.09403341, 0.053608175, 0.07975728], [119, -18, 95], "RELU6"),  # bytes
        ("int8", [0.012128083, 0.02615881, 0.0061478033], [95, 41, -29], "RELU_N1_TO_1"),  # int16
        ("uint8", [0.0010486875, 0.00023826462, 0.00071757194], [89, 1, 86], "NONE"),  # split s
        ("uint8", [0.24615479, 0.19150808, 0.11346115], [210, 87, 71], "RELU"),  # int16
    ],
    "SUB": [
        ("int8", [0.03125, 0.015625, 0.03125], [-78, 38, -117], "RELU"),  # bytes s
        ("int8", [0.6829888, 0.26552188, 0.27399525], [16, 97, -12], "RELU6"),  # split s
        ("uint8", [0.16800138, 0.0068611656, 0.14951523], [186, 129, 156], "NONE"),  # bytes
        ("uint8", [0.034862053, 0.034019087, 0.01378386], [161, 254, 3], "RELU"),  # int16
        ("int8", [0.5, 0.001, 0.5 / 300], [3, -7, 10], "NONE"),  # s1 / s_out = 300: builtin
    ],
}


@pytest.mark.usefixtures("litert")
@pytest.mark.parametrize("op", ["ADD", "SUB"])
def test_litert_forms(op, forms):
    """numerics="litert" equals LiteRT's default interpreter on every pair of values: XNNPACK's integer add
    (one rounding of a 2**shift-scaled sum) in the kernel's forms, and a builtin SUB."""
    from tests.litert_check import check_litert

    _require_vbmi()
    net, sets = _grid_net(op, LITERT[op], shape=(1, 256, 256))
    check_litert(net.build(), sets)
    want = {(BYTES, False, False), (BYTES, False, True), (SPLIT, False, True), (WIDE, False, False)}
    assert set(forms) == (want | {(SPLIT, False, False)} if op == "ADD" else want)  # the comments in LITERT


def _reference(dtype: str, s, z, lo: int, hi: int, sign: int = 1):
    """The reference's 64 Ki table and add8's constants for it (add.py's arithmetic)."""
    from engine.numerics.fixedpoint import quantize_multiplier_smaller_than_one_exp as q

    twice = 2 * max(s[0], s[1])
    (m1, sh1), (m2, sh2), (mo, sho) = q(s[0] / twice), q(s[1] / twice), q(twice / (2**20 * s[2]))
    v = byte_values(dtype)
    in1, in2, out = Rescale(-z[0], m1, sh1), Rescale(-z[1], sign * m2, sh2), Rescale(z[2], mo, sho)
    table = add_table(v, v, in1, in2, out, lo, hi, 20).astype(dtype)
    return table, rescaled(v, in1, 20), rescaled(v, in2, 20), out


def test_fit_checks_every_pair():
    """fit() refuses constants that miss one pair of the table (its check is live), and where the sums do
    not fit the kernel's lanes."""
    _require_vbmi()
    dtype, s, z, _ = REFERENCE["ADD"][3]
    table, x1, x2, out = _reference(dtype, s, z, -128, 127)
    assert vector_constants(x1, x2, out, (-128, 127), table, True) is not None
    for a, b in ((0, 0), (131, 77), (255, 255)):
        wrong = table.copy()
        wrong[a, b] += 1 if wrong[a, b] < 127 else -1
        assert vector_constants(x1, x2, out, (-128, 127), wrong, True) is None
    y = np.arange(256, dtype=np.int64) << 40  # U, V in steps of 2**20 (their sums small): no form holds them
    assert all(add8.planes(y, -y, 20, (0, -128, 127), 0, form, True) is None for form in (BYTES, SPLIT, WIDE))


def _kernel_matches(p: np.ndarray, dtype: str) -> None:
    """add8_flat and add8_rows with planes p compute emulate(p) on every pair and every tail length."""
    grid = np.arange(65536)
    a, b = (grid // 256).astype(np.uint8).view(dtype), (grid % 256).astype(np.uint8).view(dtype)
    want = add8.emulate(p, dtype == "int8").reshape(-1).view(dtype)
    got = np.empty(65536, dtype)
    add8.add8_flat.serial(a, b, got, p)
    assert np.array_equal(got, want)
    for n in range(1, 64):  # every tail length, at an odd offset
        got = np.zeros(n, dtype)
        add8.add8_flat.serial(a[1000 : 1000 + n], b[1000 : 1000 + n], got, p)
        assert np.array_equal(got, want[1000 : 1000 + n])
    rows = np.empty((256, 256), dtype)
    vec = b[:256]  # 0 .. 255
    add8.add8_rows.serial(a, vec, rows.reshape(-1), p, False, np.empty(768, dtype))  # a: row r holds r
    assert np.array_equal(rows.reshape(-1), want)
    add8.add8_rows.serial(a, vec[:0], rows.reshape(-1), p, True, np.tile(vec, 2))  # the vector as a, tiled
    assert np.array_equal(rows, want.reshape(256, 256).T)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_kernel_equals_emulation(dtype):
    """Each form's kernel computes what emulate() (fit's check) says, on every pair and on every length of
    a masked tail, flat and in rows (either operand repeated); the oracle tests pin emulate() itself."""
    _require_vbmi()
    signed = dtype == "int8"
    lo, hi = (-128, 127) if signed else (0, 255)
    done = set()
    for k, (_, s, z, _) in enumerate(c for c in REFERENCE["ADD"] + REFERENCE["SUB"] if c[0] == dtype):
        _, x1, x2, out = _reference(dtype, s, z, lo, hi, 1 if k % 2 else -1)
        r = -out.shift
        y1, y2 = x1 * out.multiplier, x2 * out.multiplier + (1 << 30) + (1 << (30 + r))
        for form, ties, (ya, yb) in itertools.product(
            (BYTES, SPLIT, WIDE), (0, 1 << 31), ((y1, y2), (y2, y1))
        ):
            p = add8.planes(ya, yb, 31 + r, (z[2], lo, hi), ties, form, signed)
            if p is not None and (form, ties > 0) not in done:
                done.add((form, ties > 0))
                _kernel_matches(p, dtype)
    assert done == {(f, t) for f in (BYTES, SPLIT, WIDE) for t in (False, True)}


@pytest.mark.usefixtures("litert")
def test_mul_rows(kernel_build, monkeypatch):
    """MUL by a per-channel operand along the last axis (a squeeze-and-excite block's [N, H, W, C] * [1, 1, 1, C]):
    binary8.vmul_rows, the vector constant (batch 1 and 3) or an activation (batch 1), either input first, rows
    of 96, 40 and 5, every fused activation."""
    from engine.kernels import binary8

    rows = []
    pick = binary8.vmul_rows.pick
    monkeypatch.setattr(binary8.vmul_rows, "pick", lambda work: rows.append(work) or pick(work))
    nets, rng = (Net(), Net()), np.random.default_rng(6)
    cases = [([1, 12, 12, 96], [96]), ([1, 9, 9, 40], [1, 1, 1, 40]), ([1, 30, 40, 5], [1, 1, 1, 5])]
    for k, (full, channel) in enumerate(cases * 2):
        dtype, act, first = ["int8", "uint8"][k % 2], ACTS[k % 4], k >= 3
        (s1, z1), (s2, z2), (_, zo) = (qparams(rng, dtype, -2.0, -0.5) for _ in range(3))
        so = float(F32(s1 * s2 * 10 ** rng.uniform(0, 1.5)))
        net = nets[k % 2 if len(channel) == 4 else 0]
        a = net.input(full, dtype, s1, z1)
        if net is nets[0]:
            b = net.const(rng.integers(0, 256, channel).astype(np.uint8).view(dtype), dtype, s2, z2)
        else:
            b = net.input(channel, dtype, s2, z2)
        out = net.tensor(full, dtype, so, zo)
        net.op(
            "MUL",
            [b, a] if first else [a, b],
            [out],
            f"MUL {dtype} {full} {channel} {first} {act}",
            fused_activation_function=act,
        )
    check(nets[0], run_sets(nets[0], 7, batches=(1, 3)))
    check(nets[1], run_sets(nets[1], 8, batches=(1, 1)))
    assert len(rows) >= 6 or not binary8.SIMD
