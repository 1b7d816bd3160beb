"""Which kind of answer a model gives, read from the graph itself (not from declared output shapes).

- "detect", head "postprocess": a TFLite_Detection_PostProcess op; its four outputs (boxes, classes,
  scores, count) are found by tensor, wherever they sit among the graph outputs (files often declare
  them with empty shapes; the traffic model adds LSTM state outputs).
- "detect", head "yolov8": one output [1, 4 + C, N] with N > 4 + C (cx, cy, w, h, C class scores; no
  objectness); head "yolov5": [1, N, 5 + C] with N > 5 + C (cx, cy, w, h, objectness, C scores).
- "segment": an ARG_MAX map [1, H, W] (or [1, H, W, 1]) of an image-sized output, or logits
  [1, H, W, C] with H, W at least a quarter of the input's.
- "pose": MoveNet's [1, 1, 17, 3] (y, x, score).
- "classify": anything else that takes an image; "regress" for non-image inputs with non-class outputs
  is only ever chosen by the registry or --task.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Graph

TASKS = ("classify", "detect", "segment", "pose", "regress")
POSTPROCESS_OP = "TFLite_Detection_PostProcess"


@dataclass(frozen=True)
class Task:
    kind: str  # one of TASKS
    head: str = ""  # detect: "postprocess", "yolov8", "yolov5"; segment: "argmax", "logits"
    outputs: tuple[int, ...] = (0,)  # positions in graph.outputs that carry the answer, in order


def _input_hw(g: Graph) -> tuple[int, int] | None:
    if not g.inputs:
        return None
    s = g.tensors[g.inputs[0]].shape
    if len(s) == 4 and s[3] in (1, 3):
        return s[1], s[2]
    return None


def _postprocess(g: Graph) -> Task | None:
    for op in g.ops:
        if op.type == POSTPROCESS_OP and len(op.outputs) >= 4:
            pos = {t: k for k, t in enumerate(g.outputs)}
            if all(t in pos for t in op.outputs[:4]):
                return Task("detect", "postprocess", tuple(pos[t] for t in op.outputs[:4]))
    return None


def _yolo(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 3 or shape[0] != 1:
        return None
    a, b = shape[1], shape[2]
    if 5 <= a < b and a - 4 <= 1000:
        return "yolov8"
    if 6 <= b < a and b - 5 <= 1000:
        return "yolov5"
    return None


def detect_task(g: Graph) -> Task:
    """The task of a graph (see the module docstring)."""
    found = _postprocess(g)
    if found is not None:
        return found
    hw = _input_hw(g)
    for k, i in enumerate(g.outputs):
        t = g.tensors[i]
        s = tuple(t.shape)
        if s == (1, 1, 17, 3):
            return Task("pose", "movenet", (k,))
        if hw is not None and (head := _yolo(s)) is not None:
            return Task("detect", head, (k,))
        single = len(g.outputs) == 1  # a segmenter has one output; a test graph's feature maps are not masks
        if single and hw is not None and len(s) in (3, 4) and s[0] == 1 and _image_sized(s[1:3], hw):
            if len(s) == 3 or s[3] == 1:
                return Task("segment", "argmax", (k,))
            return Task("segment", "logits", (k,))
    return Task("classify", "", (0,))


def _image_sized(hw_out: tuple[int, ...], hw_in: tuple[int, int]) -> bool:
    return len(hw_out) == 2 and hw_out[0] * 4 >= hw_in[0] and hw_out[1] * 4 >= hw_in[1] and min(hw_out) > 1


def task_for(g: Graph, kind: str | None) -> Task:
    """detect_task, or the task asked for (--task / the registry), with its head found from the graph."""
    found = detect_task(g)
    if kind is None or kind == found.kind:
        return found
    if kind == "detect":
        for k, i in enumerate(g.outputs):
            head = _yolo(tuple(g.tensors[i].shape))
            if head:
                return Task("detect", head, (k,))
        return Task(
            "detect", "postprocess", tuple(range(min(4, len(g.outputs))))
        )  # fewer: a clear error later
    if kind == "segment":
        s = g.tensors[g.outputs[0]].shape
        return Task("segment", "logits" if len(s) == 4 and s[3] > 1 else "argmax", (0,))
    if kind == "pose":
        return Task("pose", "movenet", (0,))
    return Task(kind, "", (0,))
