"""Model outputs -> the CLI's answers per task (JSON-ready dicts), their text lines and annotated pictures.

JSON per result (README "JSON output"): "image" (or "input"), "size" [w, h], and by task
- classify: "predictions": [{label, index, score, raw}], best first;
- detect: "score_threshold", ("iou_threshold" for YOLO heads), "detections": [{label, class_id, score,
  box [x0, y0, x1, y1] in image pixels, box_normalized [x0, y0, x1, y1] / image size}], best first;
- segment: "classes": [{label, class_id, fraction}], largest first;
- pose: "keypoints": 17 x {name, x, y (normalized to the image), score};
- regress: "output" (dequantized), "raw".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from . import pose as pose_mod
from . import postprocess as pp
from . import segment, yolo
from .tasks import Task


@dataclass
class Context:
    """What the answers of one model need, fixed for the run."""

    task: Task
    model: object
    labels: list[str] | None
    label_offset: int = 0
    score_threshold: float = 0.3
    iou_threshold: float = yolo.IOU_THRESHOLD
    top_k: int = 1
    letterboxed: bool = False
    input_wh: tuple[int, int] = (0, 0)
    private: dict = field(default_factory=dict)

    def outputs(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        return [outputs[k] for k in self.task.outputs]

    def infos(self) -> list:
        return [self.model.outputs[k] for k in self.task.outputs]


def answers(ctx: Context, outputs: list[np.ndarray], names: list[str], sizes: list | None) -> list[dict]:
    """One dict per input; keys starting with '_' hold what drawing needs and are dropped before JSON."""
    kind = ctx.task.kind
    if kind == "detect":
        sizes = sizes or [(1, 1)] * len(names)
        found = _detect(ctx, outputs, sizes)
        extra = {"iou_threshold": ctx.iou_threshold} if ctx.task.head != "postprocess" else {}
        return [
            {
                "image": n,
                "size": list(s),
                "score_threshold": ctx.score_threshold,
                **extra,
                "detections": [d.to_dict() for d in f],
                "_found": f,
            }
            for n, s, f in zip(names, sizes, found)
        ]
    if kind == "segment":
        maps = segment.class_maps(ctx.outputs(outputs)[0], ctx.task.head)
        sizes = sizes or [m.shape[::-1] for m in maps]
        return [
            {"image": n, "size": list(s), "classes": segment.fractions(m, ctx.labels), "_map": m}
            for n, s, m in zip(names, sizes, maps)
        ]
    if kind == "pose":
        y = pp.dequantize(ctx.outputs(outputs)[0], ctx.infos()[0])
        pts = pose_mod.keypoints(y)
        sizes = sizes or [(1, 1)] * len(names)
        return [{"image": n, "size": list(s), "keypoints": p} for n, s, p in zip(names, sizes, pts)]
    if kind == "regress":
        y = pp.dequantize(outputs[0], ctx.model.outputs[0])
        return [
            {"input": n, "output": y[i].tolist(), "raw": outputs[0][i].tolist()} for i, n in enumerate(names)
        ]
    preds = pp.top_k(outputs[0], ctx.model.outputs[0], ctx.labels, ctx.top_k)
    return [
        {"image": n, "predictions": [p.to_dict() for p in ps], "_preds": ps} for n, ps in zip(names, preds)
    ]


def _detect(ctx: Context, outputs: list[np.ndarray], sizes: list) -> list[list[pp.Detection]]:
    if ctx.task.head == "postprocess":
        return pp.detections(ctx.outputs(outputs), sizes, ctx.labels, ctx.label_offset, ctx.score_threshold)
    pred = pp.dequantize(ctx.outputs(outputs)[0], ctx.infos()[0])
    result = []
    for n, size in enumerate(sizes):
        boxes = yolo.decode(pred[n], ctx.task.head, ctx.input_wh, ctx.score_threshold, ctx.iou_threshold)
        geo = (yolo.Letterbox.of if ctx.letterboxed else yolo.Letterbox.stretch)(tuple(size), ctx.input_wh)
        xyxy = geo.to_image(boxes.xyxy, tuple(size))
        w, h = size
        result.append(
            [
                pp.Detection(
                    pp.label_for(ctx.labels, int(c), ctx.label_offset),
                    int(c),
                    float(s),
                    tuple(float(v) for v in b),
                    (b[0] / w, b[1] / h, b[2] / w, b[3] / h),
                )
                for b, s, c in zip(xyxy, boxes.scores, boxes.classes)
            ]
        )
    return result


def text(r: dict, kind: str, top_k: int) -> str:
    """The text lines of one result."""
    if kind == "regress":
        return f"{r['input']}: output {r['output']}"
    if kind == "detect":
        dets = r["detections"]
        lines = [
            f"{r['image']}: {len(dets)} detection{'s' * (len(dets) != 1)} (score >= {r['score_threshold']:g})"
        ]
        for d in dets:
            x0, y0, x1, y1 = d["box"]
            lines.append(f"  {d['label']:<16} {d['score']:.3f}  box ({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f})")
        return "\n".join(lines)
    if kind == "segment":
        lines = [f"{r['image']}: {len(r['classes'])} classes"]
        lines += [f"  {c['label']:<16} {100 * c['fraction']:5.1f} %" for c in r["classes"]]
        return "\n".join(lines)
    if kind == "pose":
        pts = r["keypoints"]
        lines = [f"{r['image']}: pose, mean keypoint score {np.mean([p['score'] for p in pts]):.3f}"]
        lines += [f"  {p['name']:<15} x {p['x']:.3f}  y {p['y']:.3f}  score {p['score']:.3f}" for p in pts]
        return "\n".join(lines)
    preds = r["predictions"]
    if top_k == 1:
        return f"{r['image']}: {preds[0]['label']} (score {preds[0]['score']:.3f})"
    return "\n".join([f"{r['image']}:"] + [f"  {p['label']:<16} {p['score']:.4f}" for p in preds])


def draw(ctx: Context, img: Image.Image, r: dict) -> Image.Image:
    kind = ctx.task.kind
    if kind == "detect":
        return pp.draw_detections(img, r["_found"])
    if kind == "segment":
        return segment.overlay(img, r["_map"], r["classes"])
    if kind == "pose":
        return pose_mod.draw(img, r["keypoints"])
    return pp.draw_predictions(img, r["_preds"])


def public(r: dict) -> dict:
    """The result without its private drawing data."""
    return {k: v for k, v in r.items() if not k.startswith("_")}
