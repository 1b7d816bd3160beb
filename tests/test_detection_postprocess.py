"""TFLite_Detection_PostProcess against LiteRT's reference interpreter, bit for bit.

The reference leaves some output slots unwritten (fewer detections than max_detections; classes beyond
num_classes with max_classes_per_detection; slots beyond max_detections with regular NMS) and returns
whatever its arena held there. Those slots are compared only on our side (they must be zero); every
slot the reference writes must match exactly.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from PIL import Image

from engine.errors import InputError, UnsupportedError
from engine.formats.tflite import import_tflite
from engine.graph import Graph, Op
from engine.ops.detection_postprocess import prepare
from tests.oracle import reference_run_many
from tests.tflite_builder import build_model, flexbuffer_options

OP = "TFLite_Detection_PostProcess"
SSD = "ssd_mobilenet_v1_coco_uint8.tflite"
BASE = {
    "max_detections": 10,
    "max_classes_per_detection": 1,
    "nms_iou_threshold": 0.5,
    "nms_score_threshold": 0.1,
    "y_scale": 10.0,
    "x_scale": 10.0,
    "h_scale": 5.0,
    "w_scale": 5.0,
}


def _quant(dtype: str, q: tuple[float, int]) -> dict:
    return {} if dtype == "float32" else {"scale": [q[0]], "zero_point": [q[1]]}


def one_op_model(
    nb: int,
    cols: int,
    box_dtype: str,
    cls_dtype: str,
    anchors: np.ndarray,
    opts: dict,
    width: int = 4,
    box_q=(0.05, 128),
    cls_q=(1 / 256, 0),
    anc_q=(0.01, 0),
    anchors_input: bool = False,
) -> bytes:
    """One postprocess op; the anchors are a constant, or a third graph input with anchors_input."""
    anc_dtype = np.dtype(anchors.dtype).name
    tensors = [
        dict(name="boxes", shape=[1, nb, width], dtype=box_dtype, **_quant(box_dtype, box_q)),
        dict(name="scores", shape=[1, nb, cols], dtype=cls_dtype, **_quant(cls_dtype, cls_q)),
        dict(
            name="anchors",
            shape=[nb, 4],
            dtype=anc_dtype,
            data=None if anchors_input else anchors,
            **_quant(anc_dtype, anc_q),
        ),
        *[{"name": f"out{k}", "shape": [], "dtype": "float32"} for k in range(4)],
    ]
    ops = [
        {"op": OP, "inputs": [0, 1, 2], "outputs": [3, 4, 5, 6], "custom_options": flexbuffer_options(opts)}
    ]
    return build_model(tensors, ops, inputs=[0, 1, 2] if anchors_input else [0, 1], outputs=[3, 4, 5, 6])


def postprocess_op(g: Graph) -> Op:
    return next(op for op in g.ops if op.type == OP)


def engine_outputs(g: Graph, boxes: np.ndarray, scores: np.ndarray, anchors=None) -> list[np.ndarray]:
    """Our kernel on these inputs, called through prepare() with the graph's constant anchors
    (or with `anchors` as a runtime input)."""
    op = postprocess_op(g)
    const = g.tensors[op.inputs[2]].data
    if anchors is None:
        anchors = const
    p = prepare(op, g, [boxes.shape, scores.shape, anchors.shape], [None, None, const])
    outs = [np.full(s, np.nan, np.float32) for s in p.out_shapes]  # NaN: catches slots left unwritten
    p.run([boxes, scores, anchors], outs, [np.empty(shape, dtype) for shape, dtype in p.scratch])
    return outs


def written_slots(opts: dict, count: int, slots: int) -> np.ndarray:
    """The output slots the reference writes for `count` detections."""
    k = np.arange(slots)
    if opts.get("use_regular_nms", False):
        return k < opts["max_detections"]
    per = opts["max_classes_per_detection"]
    return (k // per < count) & (k % per < min(per, opts["num_classes"]))


def assert_same(ref: list[np.ndarray], ours: list[np.ndarray], opts: dict, image: int = 0) -> None:
    """ref: the reference's outputs (batch 1); ours: our batched outputs, image `image` of them."""
    boxes, classes, scores, num = (o[image] for o in ours)
    assert num.dtype == np.float32 and np.array_equal(num, ref[3][0]), (num, ref[3])
    mask = written_slots(opts, int(ref[3][0]), ref[1].shape[1])
    for name, a, r in (
        ("boxes", boxes, ref[0][0]),
        ("classes", classes, ref[1][0]),
        ("scores", scores, ref[2][0]),
    ):
        assert a.shape == r.shape and a.dtype == np.float32, name
        assert np.array_equal(a[mask], r[mask]), f"{name}: {a[mask]} != {r[mask]}"
        assert not np.any(a[~mask]), f"{name}: unwritten slots are not zero"


def random_anchors(rng, nb: int, dtype: str) -> np.ndarray:
    """Anchors on a coarse grid, so boxes overlap and NMS suppresses."""
    centers = rng.integers(0, 100, (nb, 2))
    sizes = rng.integers(5, 50, (nb, 2))
    anchors = np.concatenate([centers, sizes], 1)
    return anchors.astype(np.uint8) if dtype != "float32" else (anchors * 0.01).astype(np.float32)


def random_inputs(rng, nb: int, cols: int, box_dtype: str, cls_dtype: str, levels: int, width: int = 4):
    """Box encodings over the whole code range; scores on `levels` levels (few levels: many ties)."""
    if box_dtype == "float32":
        boxes = rng.normal(0.0, 3.0, (1, nb, width)).astype(np.float32)
    else:
        boxes = rng.integers(0, 256, (1, nb, width), dtype=np.uint8)
    # skewed towards low scores so that a high score threshold leaves few candidates
    codes = np.floor(rng.uniform(0, 1, (1, nb, cols)) ** 4 * levels) * (255 // max(levels - 1, 1))
    scores = codes.astype(np.uint8) if cls_dtype != "float32" else (codes / 256.0).astype(np.float32)
    return boxes, scores


# ---------------------------------------------------------------------------------------- the real SSD
@pytest.fixture(scope="module")
def ssd(models_dir, shared):
    """The reference's own inputs and outputs of the SSD's postprocess op: table.jpg and 10 random images."""
    path = models_dir / SSD
    g = import_tflite(path.read_bytes())
    op = postprocess_op(g)
    img = Image.open(shared / "data" / "ssd" / "table.jpg").convert("RGB").resize((300, 300), Image.NEAREST)
    rng = np.random.default_rng(7)
    images = [np.asarray(img, np.uint8)[None]]
    images += [rng.integers(0, 256, (1, 300, 300, 3), dtype=np.uint8) for _ in range(10)]
    runs = reference_run_many(path, [[x] for x in images], preserve_all=True)
    names_in = [g.tensors[i].name for i in op.inputs[:2]]
    names_out = [g.tensors[i].name for i in op.outputs]
    cases = [([r["tensors"][n] for n in names_in], [r["tensors"][n] for n in names_out]) for r in runs]
    return g, op, cases


def test_ssd_matches_reference(ssd):
    g, op, cases = ssd
    for (boxes, scores), ref in cases:
        ours = engine_outputs(g, boxes, scores)
        assert_same(ref, ours, op.options)
        if ref[3][0] == op.options["max_detections"]:  # every slot written: the whole arrays agree
            assert all(np.array_equal(a, r) for a, r in zip(ours, ref))
    # the table.jpg result NOTES.md records
    assert np.array_equal(cases[0][1][2][0, :4], np.float32([0.48828125, 0.4609375, 0.42578125, 0.40234375]))


def test_ssd_batch(ssd):
    g, op, cases = ssd
    pick = cases[:4]
    boxes = np.concatenate([c[0][0] for c in pick])
    scores = np.concatenate([c[0][1] for c in pick])
    ours = engine_outputs(g, boxes, scores)
    assert ours[0].shape == (4, 10, 4) and ours[3].shape == (4,)
    for b, (_, ref) in enumerate(pick):
        assert_same(ref, ours, op.options, image=b)


@pytest.mark.parametrize(
    "opts",
    [
        {"use_regular_nms": True},
        {"use_regular_nms": True, "detections_per_class": 2, "max_detections": 25},
        {"max_classes_per_detection": 3},
        {"max_detections": 40, "nms_iou_threshold": 0.3, "nms_score_threshold": 0.2},
    ],
    ids=["regular", "regular_per_class_2", "fast_3_classes", "fast_40"],
)
def test_ssd_inputs_other_options(ssd, opts):
    """The SSD's real inputs (quantization and anchors included) through other option sets."""
    g, op, cases = ssd
    box_t, cls_t, anc_t = (g.tensors[i] for i in op.inputs)
    options = {k: v for k, v in op.options.items() if not k.startswith("_")}
    options.update(opts)
    nb, cols = box_t.shape[1], cls_t.shape[2]
    model = one_op_model(
        nb,
        cols,
        "uint8",
        "uint8",
        anc_t.data,
        options,
        box_q=(float(box_t.scale[0]), int(box_t.zero_point[0])),
        cls_q=(float(cls_t.scale[0]), int(cls_t.zero_point[0])),
        anc_q=(float(anc_t.scale[0]), int(anc_t.zero_point[0])),
    )
    inputs = [c[0] for c in cases[:4]]
    refs = reference_run_many(model, inputs)
    mg = import_tflite(model)
    for (boxes, scores), ref in zip(inputs, refs):
        assert_same(ref["outputs"], engine_outputs(mg, boxes, scores), options)


# --------------------------------------------------------------------------------- generated one-op models
# (id, box dtype, score dtype, score levels, num_classes, score columns, encoding width, options)
CASES = [
    ("fast_u8", "uint8", "uint8", 256, 10, 11, 4, {}),
    ("fast_u8_ties", "uint8", "uint8", 4, 10, 11, 4, {}),
    ("fast_multiclass_ties", "uint8", "uint8", 4, 20, 21, 4, {"max_classes_per_detection": 4}),
    ("fast_more_classes_than_exist", "uint8", "uint8", 8, 5, 6, 4, {"max_classes_per_detection": 7}),
    ("fast_float", "float32", "float32", 256, 10, 11, 4, {}),
    ("fast_float_multiclass", "float32", "float32", 8, 12, 13, 4, {"max_classes_per_detection": 3}),
    ("fast_padding", "uint8", "uint8", 256, 10, 11, 4, {"nms_score_threshold": 0.97, "max_detections": 60}),
    (
        "regular_u8",
        "uint8",
        "uint8",
        256,
        10,
        11,
        4,
        {"use_regular_nms": True, "detections_per_class": 3, "max_detections": 12},
    ),
    ("regular_ties", "uint8", "uint8", 2, 8, 9, 4, {"use_regular_nms": True, "detections_per_class": 5}),
    ("regular_float", "float32", "float32", 256, 6, 7, 4, {"use_regular_nms": True}),
    (
        "regular_multiclass_slots",
        "uint8",
        "uint8",
        16,
        6,
        7,
        4,
        {"use_regular_nms": True, "max_classes_per_detection": 2},
    ),
    (
        "regular_padding",
        "float32",
        "uint8",
        256,
        6,
        7,
        4,
        {"use_regular_nms": True, "nms_score_threshold": 0.97, "max_detections": 60},
    ),
    ("mixed_no_background", "uint8", "float32", 8, 7, 7, 6, {"max_classes_per_detection": 2}),
    ("mixed_regular_no_background", "float32", "uint8", 8, 7, 7, 6, {"use_regular_nms": True}),
]


@pytest.mark.parametrize(
    "case, box_dtype, cls_dtype, levels, num_classes, cols, width, extra", CASES, ids=[c[0] for c in CASES]
)
def test_generated(case, box_dtype, cls_dtype, levels, num_classes, cols, width, extra):
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    nb = 300
    opts = dict(BASE, num_classes=num_classes, **extra)
    anchors = random_anchors(rng, nb, box_dtype)
    model = one_op_model(nb, cols, box_dtype, cls_dtype, anchors, opts, width=width)
    inputs = [random_inputs(rng, nb, cols, box_dtype, cls_dtype, levels, width) for _ in range(4)]
    refs = reference_run_many(model, inputs)
    g = import_tflite(model)
    for (boxes, scores), ref in zip(inputs, refs):
        assert_same(ref["outputs"], engine_outputs(g, boxes, scores), opts)
    # the same inputs as one batch
    ours = engine_outputs(g, np.concatenate([i[0] for i in inputs]), np.concatenate([i[1] for i in inputs]))
    for b, ref in enumerate(refs):
        assert_same(ref["outputs"], ours, opts, image=b)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_every_box_decoded(dtype):
    """IoU threshold 1 suppresses nothing and max_detections = all anchors: every decoded box comes out
    (uint8: all 256 codes in every coordinate; float: a wide range of exp arguments)."""
    rng = np.random.default_rng(11)
    nb = 1024
    opts = dict(BASE, num_classes=1, max_detections=nb, nms_iou_threshold=1.0, nms_score_threshold=0.0)
    anchors = random_anchors(rng, nb, dtype)
    model = one_op_model(nb, 2, dtype, "float32", anchors, opts, box_q=(0.11, 100))
    if dtype == "uint8":
        boxes = np.stack([rng.permutation(np.arange(nb) % 256) for _ in range(4)], 1)[None].astype(np.uint8)
    else:
        boxes = (rng.normal(0.0, 1.0, (1, nb, 4)) * rng.choice([0.1, 1.0, 8.0], (1, nb, 4))).astype(
            np.float32
        )
    scores = rng.uniform(0.01, 1.0, (1, nb, 2)).astype(np.float32)
    (ref,) = reference_run_many(model, [(boxes, scores)])
    assert ref["outputs"][3][0] == nb
    ours = engine_outputs(import_tflite(model), boxes, scores)
    assert all(np.array_equal(a, r) for a, r in zip(ours, ref["outputs"]))


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_anchors_as_runtime_input(dtype):
    rng = np.random.default_rng(3)
    nb, nc = 200, 5
    opts = dict(BASE, num_classes=nc, max_classes_per_detection=2)
    anchors = random_anchors(rng, nb, dtype)
    model = one_op_model(nb, nc + 1, dtype, dtype, anchors, opts, anchors_input=True)
    runs = [
        (*random_inputs(rng, nb, nc + 1, dtype, dtype, 16), random_anchors(rng, nb, dtype)) for _ in range(3)
    ]
    refs = reference_run_many(model, runs)
    g = import_tflite(model)
    for (boxes, scores, anc), ref in zip(runs, refs):
        assert_same(ref["outputs"], engine_outputs(g, boxes, scores, anc), opts)
    if dtype == "float32":  # a negative extent, which the reference's box validation rejects
        bad = runs[0][2].copy()
        bad[5, 3] = -1.0
        with pytest.raises(InputError, match="negative"):
            engine_outputs(g, runs[0][0], runs[0][1], bad)


@pytest.mark.parametrize("regular", [False, True])
def test_iou_exactly_at_threshold(regular):
    """Zero encodings decode to the anchors themselves; these pairs overlap with IoU exactly 0.5 (kept:
    suppression needs IoU > threshold) or just above it (suppressed)."""
    anchors = np.float32(
        [  # (ycenter, xcenter, h, w)
            [0.5, 0.5, 1.0, 1.0],
            [0.5, 0.25, 1.0, 0.5],  # IoU with the first: 0.5
            [0.5, 0.75, 1.0, 0.5],  # 0.5 with the first, 0 with the second
            [0.5, 0.2578125, 1.0, 0.515625],  # IoU with the second: just above 0.5
            [2.0, 2.0, 0.5, 0.5],
            [2.0, 2.0, 0.5, 0.5],  # identical to the previous: IoU 1
        ]
    )
    nb = len(anchors)
    opts = dict(BASE, num_classes=2, nms_iou_threshold=0.5, nms_score_threshold=0.0, use_regular_nms=regular)
    model = one_op_model(nb, 3, "float32", "float32", anchors, opts)
    boxes = np.zeros((1, nb, 4), np.float32)
    scores = np.float32(
        [[[0, 0.5, 0.5], [0, 0.5, 0.5], [0, 0.4, 0.5], [0, 0.5, 0.1], [0, 0.3, 0.3], [0, 0.3, 0.3]]]
    )
    (ref,) = reference_run_many(model, [(boxes, scores)])
    assert_same(ref["outputs"], engine_outputs(import_tflite(model), boxes, scores), opts)


def test_int8_same_as_uint8():
    """int8 tensors (which the reference refuses) behave as the uint8 tensor holding the same real values:
    codes shifted by 128 with zero points shifted by 128 give the uint8 reference's outputs."""
    rng = np.random.default_rng(5)
    nb, nc = 300, 10
    for extra in ({"max_classes_per_detection": 3}, {"use_regular_nms": True}):
        opts = dict(BASE, num_classes=nc, **extra)
        anchors = random_anchors(rng, nb, "uint8")
        model = one_op_model(nb, nc + 1, "uint8", "uint8", anchors, opts, cls_q=(1 / 256, 3))
        model8 = one_op_model(
            nb,
            nc + 1,
            "int8",
            "int8",
            (anchors.astype(np.int16) - 128).astype(np.int8),
            opts,
            box_q=(0.05, 0),
            cls_q=(1 / 256, 3 - 128),
            anc_q=(0.01, -128),
        )
        inputs = [random_inputs(rng, nb, nc + 1, "uint8", "uint8", 8) for _ in range(2)]
        refs = reference_run_many(model, inputs)
        g8 = import_tflite(model8)
        for (boxes, scores), ref in zip(inputs, refs):
            shifted = [(a.astype(np.int16) - 128).astype(np.int8) for a in (boxes, scores)]
            assert_same(ref["outputs"], engine_outputs(g8, *shifted), opts)


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "change, msg",
    [
        ({"nms_iou_threshold": 0.0}, "nms_iou_threshold"),
        ({"num_classes": 5}, "num_classes"),
        ({"use_regular_nms": True, "max_detections": 0}, "regular NMS"),
        ({"max_classes_per_detection": 0}, "max_classes_per_detection"),
        ({"y_scale": 0.0}, "scales"),
    ],
)
def test_bad_options_refused(change, msg):
    rng = np.random.default_rng(0)
    opts = {**BASE, "num_classes": 3, **change}
    g = import_tflite(one_op_model(20, 4, "uint8", "uint8", random_anchors(rng, 20, "uint8"), opts))
    boxes, scores = random_inputs(rng, 20, 4, "uint8", "uint8", 8)
    with pytest.raises(UnsupportedError, match=msg):
        engine_outputs(g, boxes, scores)


def test_negative_anchor_size_refused():
    rng = np.random.default_rng(0)
    anchors = random_anchors(rng, 20, "float32")
    anchors[3, 2] = -0.1
    g = import_tflite(one_op_model(20, 4, "float32", "float32", anchors, dict(BASE, num_classes=3)))
    with pytest.raises(UnsupportedError, match="negative"):
        engine_outputs(g, *random_inputs(rng, 20, 4, "float32", "float32", 8))
