"""TFLite_Detection_PostProcess (custom op, tflite/kernels/detection_postprocess.cc): SSD box decoding
followed by fast or regular multi-class non-max suppression.

Bit-exact with the kernel LiteRT runs (the reference resolver uses it too), which fixes these details:
- dequantization is (float(q) - zp) * scale in float32 (box encodings, anchors, class scores);
- decoding is done in double from float32 operands, one rounding per C++ operation, exp from libm
  (std::exp(double) == glibc exp; Python's math.exp and Numba's math.exp call the same function,
  while np.exp rounds differently on ~5 % of arguments), and each result is rounded to float32;
- IoU and the score threshold are float32;
- per-class NMS orders candidates with a stable sort by decreasing score (ties: lower anchor first);
- fast NMS picks an anchor's classes with argmax (first maximum) for one class, else with libstdc++'s
  std::partial_sort (heap select + sort heap; its order of equal scores is reproduced step by step);
- regular NMS merges each class's selections into the running top list with std::inplace_merge
  (stable: on equal scores earlier classes stay first), class by class (LiteRT's single-thread path).
The reference runs batch 1 only; here each image of a batch is processed independently.
Output slots the reference leaves unwritten (fewer detections than max_detections, or
max_classes_per_detection above num_classes, or above 1 with regular NMS) are written as zeros.
int8 tensors are accepted with the same formulas (the reference takes uint8 and float32 only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from ..errors import InputError
from ..graph import Graph, Op, Tensor
from ..kernels.irtools import flat_view
from .common import Prepared, Shape, per_tensor, require, require_types, tensors

QUANTIZED = ("uint8", "int8")


# ---------------------------------------------------------------------------------------------- decoding
@njit(cache=True)
def _decode_one(yc_part, xc_part, half_h_exp, half_w_exp, anchors, i, out):
    """ycenter = y / y_scale * anchor.h + anchor.y etc., in double, rounded to float32 once each."""
    ay = np.float64(anchors[i, 0])
    ax = np.float64(anchors[i, 1])
    ah = np.float64(anchors[i, 2])
    aw = np.float64(anchors[i, 3])
    ycenter = np.float32(yc_part * ah + ay)
    xcenter = np.float32(xc_part * aw + ax)
    half_h = np.float32(half_h_exp * ah)
    half_w = np.float32(half_w_exp * aw)
    out[i, 0] = ycenter - half_h
    out[i, 1] = xcenter - half_w
    out[i, 2] = ycenter + half_h
    out[i, 3] = xcenter + half_w


@njit(cache=True)
def _decode_quantized(codes, y_div, x_div, h_exp, w_exp, anchors, out):
    """codes: uint8 view [N, num_boxes, >=4]; the tables hold each code's y / y_scale, x / x_scale,
    0.5 * exp(h / h_scale), 0.5 * exp(w / w_scale) in double."""
    for b in range(codes.shape[0]):
        c = codes[b]
        for i in range(c.shape[0]):
            _decode_one(y_div[c[i, 0]], x_div[c[i, 1]], h_exp[c[i, 2]], w_exp[c[i, 3]], anchors, i, out[b])


@njit(cache=True)
def _decode_float(enc, y_scale, x_scale, h_scale, w_scale, anchors, out):
    """enc: float32 [N, num_boxes, >=4]; the scales are float32 values held in doubles."""
    for b in range(enc.shape[0]):
        e = enc[b]
        for i in range(e.shape[0]):
            y_div = np.float64(e[i, 0]) / y_scale
            x_div = np.float64(e[i, 1]) / x_scale
            h_exp = 0.5 * math.exp(np.float64(e[i, 2]) / h_scale)
            w_exp = 0.5 * math.exp(np.float64(e[i, 3]) / w_scale)
            _decode_one(y_div, x_div, h_exp, w_exp, anchors, i, out[b])


@njit(cache=True)
def _dequantize(codes, table, out):
    """Class scores: each code's float32 value from a 256-entry table (codes as a uint8 view)."""
    flat_in = flat_view(codes)
    flat_out = flat_view(out)
    for i in range(flat_in.shape[0]):
        flat_out[i] = table[flat_in[i]]


# ----------------------------------------------------------------------------------- single-class NMS
@njit(cache=True)
def _std_max(a, b):
    return b if a < b else a  # noqa: FURB136 -- std::max's operand choice (NaN and signed zeros)


@njit(cache=True)
def _std_min(a, b):
    return b if b < a else a  # noqa: FURB136 -- std::min's operand choice


@njit(cache=True)
def _iou(boxes, i, j):
    """ComputeIntersectionOverUnion, float32 throughout."""
    zero = np.float32(0.0)
    area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
    area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
    if area_i <= zero or area_j <= zero:
        return zero
    ymin = _std_max(boxes[i, 0], boxes[j, 0])
    xmin = _std_max(boxes[i, 1], boxes[j, 1])
    ymax = _std_min(boxes[i, 2], boxes[j, 2])
    xmax = _std_min(boxes[i, 3], boxes[j, 3])
    inter = _std_max(ymax - ymin, zero) * _std_max(xmax - xmin, zero)
    return inter / (area_i + area_j - inter)


@njit(cache=True)
def _before(scores, a, b):
    """Candidate a comes before b in std::stable_sort by decreasing score (ties: lower anchor first)."""
    return scores[a] > scores[b] or (not scores[b] > scores[a] and a < b)


@njit(cache=True)
def _sift_down(heap, scores, pos, size):
    item = heap[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _before(scores, heap[child + 1], heap[child]):
            child += 1
        if not _before(scores, heap[child], item):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = item


@njit(cache=True)
def _nms_single_class(scores, boxes, score_threshold, iou_threshold, max_detections, selected):
    """NonMaxSuppressionSingleClassHelper: writes the selected anchor indices, returns their count.

    The reference sorts every candidate above the threshold, then lets each pick deactivate the later
    candidates it overlaps (IoU(pick, candidate) > threshold) until max_detections are picked. The same
    picks come from taking candidates lazily off a heap in that sorted order and keeping each one that
    no earlier pick overlaps: O(n + k log n) instead of sorting all n.
    """
    n = scores.shape[0]
    heap = np.empty(n, np.int64)
    kept = 0
    for i in range(n):
        if scores[i] >= score_threshold:
            heap[kept] = i
            kept += 1
    output_size = min(kept, max_detections)
    if output_size == 0:
        return 0
    for pos in range(kept // 2 - 1, -1, -1):
        _sift_down(heap, scores, pos, kept)
    size = kept
    count = 0
    while size > 0 and count < output_size:
        candidate = heap[0]
        size -= 1
        heap[0] = heap[size]
        _sift_down(heap, scores, 0, size)
        suppressed = False
        for k in range(count):
            if _iou(boxes, selected[k], candidate) > iou_threshold:
                suppressed = True
                break
        if not suppressed:
            selected[count] = candidate
            count += 1
    return count


# --------------------------------------------------------------------------------------- fast NMS
@njit(cache=True)
def _greater(values, a, b):
    return values[a] > values[b]


@njit(cache=True)
def _push_heap(idx, values, hole, top, value):
    while hole > top:
        parent = (hole - 1) // 2
        if not _greater(values, idx[parent], value):
            break
        idx[hole] = idx[parent]
        hole = parent
    idx[hole] = value


@njit(cache=True)
def _adjust_heap(idx, values, hole, length, value):
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if _greater(values, idx[child], idx[child - 1]):
            child -= 1
        idx[hole] = idx[child]
        hole = child
    if (length & 1) == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        idx[hole] = idx[child - 1]
        hole = child - 1
    _push_heap(idx, values, hole, top, value)


@njit(cache=True)
def _partial_sort_desc(values, idx, middle):
    """libstdc++ std::partial_sort(idx, idx + middle, idx + len, values[i] > values[j]), step for step:
    __heap_select (make_heap, then replace the heap top by every better later element) + __sort_heap."""
    n = idx.shape[0]
    if middle >= 2:
        parent = (middle - 2) // 2
        while True:
            _adjust_heap(idx, values, parent, middle, idx[parent])
            if parent == 0:
                break
            parent -= 1
    for i in range(middle, n):
        if _greater(values, idx[i], idx[0]):
            value = idx[i]
            idx[i] = idx[0]
            _adjust_heap(idx, values, 0, middle, value)
    last = middle
    while last > 1:
        last -= 1
        value = idx[last]
        idx[last] = idx[0]
        _adjust_heap(idx, values, 0, last, value)


@njit(parallel=True, cache=True)
def _fast_nms(scores, boxes, nms, out_boxes, out_classes, out_scores, out_num):
    """NonMaxSuppressionMultiClassFastHelper per image: NMS on each anchor's best class score.

    The reference orders every anchor's classes first; only the picked anchors' orders reach the
    output, and an anchor's NMS score is its maximum whatever the order, so only those are sorted.
    """
    num_classes, label_offset, categories = nms.num_classes, nms.label_offset, nms.categories
    max_classes, max_detections = nms.max_classes, nms.max_detections
    batch, num_boxes = scores.shape[0], scores.shape[1]
    for b in prange(batch):
        best_class = np.empty(num_boxes, np.int64)
        max_scores = np.empty(num_boxes, np.float32)
        for row in range(num_boxes):
            row_scores = scores[b, row, label_offset : label_offset + num_classes]
            best = 0  # optimized_ops::ArgMaxVector: the first maximum
            for c in range(1, num_classes):
                if row_scores[c] > row_scores[best]:
                    best = c
            best_class[row] = best
            max_scores[row] = row_scores[best]
        selected = np.empty(max(max_detections, 1), np.int64)
        count = _nms_single_class(
            max_scores, boxes[b], nms.score_threshold, nms.iou_threshold, max_detections, selected
        )
        out_boxes[b] = 0.0
        out_classes[b] = 0.0
        out_scores[b] = 0.0
        order = np.empty(num_classes, np.int64)
        for k in range(count):
            a = selected[k]
            if categories == 1:
                order[0] = best_class[a]
            else:
                for c in range(num_classes):
                    order[c] = c
                _partial_sort_desc(scores[b, a, label_offset : label_offset + num_classes], order, categories)
            for col in range(categories):
                slot = max_classes * k + col
                c = order[col]
                out_boxes[b, slot, :] = boxes[b, a, :]
                out_classes[b, slot] = c
                out_scores[b, slot] = scores[b, a, label_offset + c]
        out_num[b] = count


# ------------------------------------------------------------------------------------ regular NMS
@njit(parallel=True, cache=True)
def _regular_nms(scores, boxes, nms, out_boxes, out_classes, out_scores, out_num):
    """NonMaxSuppressionMultiClassRegularHelper per image (single-thread order): NMS per class, each
    class's picks merged stably into the running list of the best max_detections."""
    num_classes, label_offset, per_class = nms.num_classes, nms.label_offset, nms.per_class
    max_detections = nms.max_detections
    batch, num_boxes = scores.shape[0], scores.shape[1]
    for b in prange(batch):
        class_scores = np.empty(num_boxes, np.float32)
        selected = np.empty(per_class, np.int64)
        top_score = np.empty(2 * max_detections, np.float32)
        top_anchor = np.empty(2 * max_detections, np.int64)
        top_class = np.empty(2 * max_detections, np.int64)
        tmp_score = np.empty(2 * max_detections, np.float32)
        tmp_anchor = np.empty(2 * max_detections, np.int64)
        tmp_class = np.empty(2 * max_detections, np.int64)
        size = 0
        for col in range(num_classes):
            for row in range(num_boxes):
                class_scores[row] = scores[b, row, col + label_offset]
            count = _nms_single_class(
                class_scores, boxes[b], nms.score_threshold, nms.iou_threshold, per_class, selected
            )
            if count == 0:
                continue
            # std::inplace_merge(list[:size], picks): a pick goes first only on a strictly higher score
            i = 0
            j = 0
            k = 0
            while i < size or j < count:
                if j < count and (i >= size or class_scores[selected[j]] > top_score[i]):
                    tmp_score[k] = class_scores[selected[j]]
                    tmp_anchor[k] = selected[j]
                    tmp_class[k] = col
                    j += 1
                else:
                    tmp_score[k] = top_score[i]
                    tmp_anchor[k] = top_anchor[i]
                    tmp_class[k] = top_class[i]
                    i += 1
                k += 1
            size = min(k, max_detections)
            top_score[:size] = tmp_score[:size]
            top_anchor[:size] = tmp_anchor[:size]
            top_class[:size] = tmp_class[:size]
        out_boxes[b] = 0.0
        out_classes[b] = 0.0
        out_scores[b] = 0.0
        for k in range(size):
            out_boxes[b, k, :] = boxes[b, top_anchor[k], :]
            out_classes[b, k] = top_class[k]
            out_scores[b, k] = top_score[k]
        out_num[b] = size


# ---------------------------------------------------------------------------------------------- prepare
def _dequant_table(op: Op, t: Tensor) -> np.ndarray:
    """float32 value of each of the 256 codes of a quantized tensor, indexed by its bit pattern as uint8."""
    scale, zp = per_tensor(op, t)
    codes = np.arange(256, dtype=np.uint8).view(t.np_dtype).astype(np.float32)
    return ((codes - np.float32(zp)) * np.float32(scale)).astype(np.float32)


def _as_u8(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint8) if a.dtype == np.int8 else a


def _option(op: Op, key: str, kind: type, default=None):
    value = op.options.get(key, default)
    require(op, value is not None, f"custom option '{key}' is missing")
    if kind is bool:
        require(op, isinstance(value, (bool, int, np.integer)), f"option '{key}'={value!r} is not a boolean")
        return bool(value)
    if kind is int:
        require(
            op,
            isinstance(value, (int, np.integer)) and not isinstance(value, bool),
            f"option '{key}'={value!r} is not an integer",
        )
        require(op, -(2**31) <= int(value) < 2**31, f"option '{key}'={value} does not fit int32")
        return int(value)
    require(
        op,
        isinstance(value, (int, float, np.number)) and not isinstance(value, bool),
        f"option '{key}'={value!r} is not a number",
    )
    return np.float32(value)  # the C++ reads every float option with AsFloat()


class Nms(NamedTuple):
    """What the NMS kernels need to know, as one argument (Numba takes named tuples)."""

    num_classes: int
    label_offset: int  # 1 when the scores have a background column first
    categories: int  # classes reported per detection (fast NMS)
    max_classes: int  # output slots per detection (fast NMS)
    max_detections: int
    per_class: int  # detections kept per class (regular NMS)
    score_threshold: np.float32
    iou_threshold: np.float32


@dataclass(frozen=True)
class DetectionOptions:
    """The op's custom options, read and checked as the C++ reads them (every float with AsFloat())."""

    max_detections: int
    max_classes: int
    per_class: int  # already capped at max_detections
    regular: bool
    num_classes: int
    score_threshold: np.float32
    iou_threshold: np.float32
    scales: tuple[float, float, float, float]  # y, x, h, w

    @classmethod
    def from_op(cls, op: Op) -> DetectionOptions:
        max_detections = _option(op, "max_detections", int)
        max_classes = _option(op, "max_classes_per_detection", int)
        per_class = _option(op, "detections_per_class", int, 100)
        regular = _option(op, "use_regular_nms", bool, False)
        num_classes = _option(op, "num_classes", int)
        score_threshold = _option(op, "nms_score_threshold", float)
        iou_threshold = _option(op, "nms_iou_threshold", float)
        scales = [_option(op, k, float) for k in ("y_scale", "x_scale", "h_scale", "w_scale")]
        require(
            op,
            max_detections >= 0 and max_classes > 0,
            f"max_detections={max_detections} must be >= 0, max_classes_per_detection={max_classes} > 0",
        )
        require(
            op,
            np.float32(0) < iou_threshold <= np.float32(1),
            f"nms_iou_threshold={iou_threshold} not in (0, 1]",
        )
        require(
            op,
            all(np.isfinite(s) and s != 0 for s in scales),
            f"box scales {scales} must be finite and nonzero",
        )
        require(op, not np.isnan(score_threshold), "nms_score_threshold is NaN")
        per_class = min(per_class, max_detections)
        if regular:
            require(op, per_class > 0, "regular NMS needs detections_per_class > 0 and max_detections > 0")
        return cls(
            max_detections,
            max_classes,
            per_class,
            regular,
            num_classes,
            score_threshold,
            iou_threshold,
            tuple(float(s) for s in scales),
        )

    def nms(self, op: Op, score_columns: int) -> Nms:
        """The kernels' options for class predictions of score_columns columns."""
        label_offset = score_columns - self.num_classes
        require(
            op,
            self.num_classes > 0 and label_offset in (0, 1),
            f"num_classes={self.num_classes} with {score_columns} score columns (background column optional)",
        )
        categories = min(self.max_classes, self.num_classes)
        return Nms(
            self.num_classes,
            label_offset,
            categories,
            self.max_classes,
            self.max_detections,
            self.per_class,
            np.float32(self.score_threshold),
            np.float32(self.iou_threshold),
        )


def _checked_tensors(op: Op, g: Graph) -> tuple[Tensor, Tensor, Tensor]:
    """The box encodings, class predictions and anchors, their types checked (and the outputs')."""
    (box_t, cls_t, anc_t), outs = tensors(op, g)
    require_types(op, box_t, ("float32", *QUANTIZED))
    require_types(op, cls_t, ("float32", *QUANTIZED))
    if box_t.dtype == "float32":
        require_types(op, anc_t, ("float32",))
    else:
        require_types(op, anc_t, QUANTIZED)
    for t in outs:
        require_types(op, t, ("float32",))
    return box_t, cls_t, anc_t


def _checked_shapes(op: Op, shapes: list) -> tuple[Shape, Shape, Shape]:
    box_shape, cls_shape, anc_shape = (tuple(int(d) for d in s) for s in shapes)
    require(
        op,
        len(box_shape) == 3 and box_shape[2] >= 4,
        f"box encodings must be [N, boxes, >=4], got {list(box_shape)}",
    )
    require(op, len(cls_shape) == 3, f"class predictions must be 3-D, got {list(cls_shape)}")
    require(
        op, len(anc_shape) == 2 and anc_shape[1] == 4, f"anchors must be [boxes, 4], got {list(anc_shape)}"
    )
    batch, num_boxes = box_shape[0], box_shape[1]
    require(
        op,
        cls_shape[:2] == (batch, num_boxes),
        f"class predictions {list(cls_shape)} do not match box encodings {list(box_shape)}",
    )
    require(op, anc_shape[0] >= num_boxes, f"{anc_shape[0]} anchors for {num_boxes} boxes")
    return box_shape, cls_shape, anc_shape


def _anchor_reader(op: Op, anc_t: Tensor, num_boxes: int):
    """anchors_of(a): float32 (y, x, h, w) per box; negative extents would make the reference reject them."""
    if anc_t.dtype == "float32":

        def anchors_of(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a[:num_boxes], np.float32)

        return anchors_of
    anchor_table = _dequant_table(op, anc_t)

    def anchors_of(a: np.ndarray) -> np.ndarray:
        return anchor_table[_as_u8(a[:num_boxes])]

    return anchors_of


def _decoder(op: Op, box_t: Tensor, scales: tuple[float, float, float, float]):
    """decode(encodings, anchors, out): the boxes, float or quantized encodings (tables computed here)."""
    y_scale, x_scale, h_scale, w_scale = scales
    if box_t.dtype == "float32":

        def decode(enc: np.ndarray, anchors: np.ndarray, out: np.ndarray) -> None:
            _decode_float(enc, y_scale, x_scale, h_scale, w_scale, anchors, out)

        return decode
    deq = _dequant_table(op, box_t).astype(np.float64)
    y_div = deq / y_scale
    x_div = deq / x_scale
    h_exp = np.array([0.5 * math.exp(v / h_scale) for v in deq])  # libm exp, as std::exp
    w_exp = np.array([0.5 * math.exp(v / w_scale) for v in deq])

    def decode(enc: np.ndarray, anchors: np.ndarray, out: np.ndarray) -> None:
        _decode_quantized(_as_u8(enc), y_div, x_div, h_exp, w_exp, anchors, out)

    return decode


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    box_t, cls_t, anc_t = _checked_tensors(op, g)
    box_shape, cls_shape, _ = _checked_shapes(op, shapes)
    batch, num_boxes = box_shape[0], box_shape[1]
    opts = DetectionOptions.from_op(op)
    nms = opts.nms(op, cls_shape[2])
    slots = opts.max_detections * opts.max_classes
    out_shapes = [(batch, slots, 4), (batch, slots), (batch, slots), (batch,)]

    anchors_of = _anchor_reader(op, anc_t, num_boxes)
    const_anchors = None
    if values[2] is not None:
        const_anchors = anchors_of(values[2])
        require(op, not np.any(const_anchors[:, 2:] < 0), "anchors with negative height or width")
    decode = _decoder(op, box_t, opts.scales)
    score_table = _dequant_table(op, cls_t) if cls_t.dtype != "float32" else None
    nms_kernel = _regular_nms if opts.regular else _fast_nms
    # the decoded boxes, and the dequantized scores
    scratch = [((batch, num_boxes, 4), np.float32)]
    if score_table is not None:
        scratch.append((cls_shape, np.float32))

    def run(inputs: list, outputs: list, scratch: list, nms: Nms = nms) -> None:
        enc, cls, anc = inputs
        anchors = const_anchors
        if anchors is None:
            anchors = anchors_of(anc)
            if np.any(anchors[:, 2:] < 0):
                raise InputError(f"{op.where()}: anchors with negative height or width")
        boxes = scratch[0]
        decode(enc, anchors, boxes)
        scores = cls
        if score_table is not None:
            scores = scratch[1]
            _dequantize(np.ascontiguousarray(_as_u8(cls)), score_table, scores)
        nms_kernel(scores, boxes, nms, *outputs)

    def warmup(inputs: list, outputs: list, scratch: list) -> None:
        """Every kernel compiled on the real inputs, but no candidate passes the score threshold: the
        NMS, quadratic in the anchors at worst, does not run at load."""
        run(inputs, outputs, scratch, nms._replace(score_threshold=np.float32(np.inf)))

    work = _work_bytes(batch, num_boxes, cls_shape[2], opts)
    return Prepared(out_shapes, run, scratch=scratch, work=work, warmup=warmup)


def _work_bytes(batch: int, num_boxes: int, columns: int, opts: DetectionOptions) -> int:
    """What the NMS kernels allocate, per image in flight (images run in parallel, one per thread):
    the candidate heap, score and selection lists."""
    per_image = num_boxes * 8 + (
        num_boxes * 4 + opts.per_class * 8 + opts.max_detections * 80
        if opts.regular
        else num_boxes * 12 + opts.max_detections * 8 + columns * 8
    )
    return min(batch, numba.config.NUMBA_NUM_THREADS) * per_image
