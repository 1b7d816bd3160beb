"""How far two numerics profiles disagree over a data set: the "validation trap" of validating a model in
Python (reference kernels) and deploying it on a microcontroller (TFLite Micro).

    compare_profiles(model_path, batches, ("reference", "tflm"), labels=None) -> report dict

Every batch runs through one prepared model per profile; the report counts the inputs whose outputs
differ in any element, the differing elements and their largest difference, and how top-1 moves (the
argmax of output 0 per input): how many inputs change class, and, with labels, each profile's accuracy
and the inputs one profile gets right and the other wrong.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import EngineError


def _load(model, name: str):
    from ..model import load

    try:
        return load(model, numerics=name), None
    except EngineError as e:  # a profile whose runtime refuses the model: reported, not raised
        return None, " ".join(str(e).split())


def compare_profiles(
    model,
    batches: Iterable[list[np.ndarray] | np.ndarray],
    names: tuple[str, str] = ("reference", "tflm"),
    labels: np.ndarray | None = None,
) -> dict:
    """The disagreement of profiles names[0] and names[1] on a model (path or bytes) over batches of inputs."""
    (a, err_a), (b, err_b) = _load(model, names[0]), _load(model, names[1])
    report: dict = {"profiles": list(names)}
    if a is None or b is None:
        report["refused"] = {n: e for n, e in zip(names, (err_a, err_b)) if e}
        return report
    n = inputs_differ = elements = elements_differ = top1_changed = 0
    max_diff = 0.0
    preds: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for x in batches:
        ya, yb = a.run(x), b.run(x)
        batch = ya[0].shape[0]
        differ = np.zeros(batch, bool)
        for oa, ob in zip(ya, yb):
            d = oa.reshape(batch, -1) != ob.reshape(batch, -1)
            differ |= d.any(axis=1)
            elements += oa.size
            elements_differ += int(d.sum())
            if d.any():
                max_diff = max(max_diff, float(np.abs(oa.astype(np.float64) - ob.astype(np.float64)).max()))
        pa, pb = ya[0].reshape(batch, -1).argmax(axis=1), yb[0].reshape(batch, -1).argmax(axis=1)
        preds[names[0]].append(pa)
        preds[names[1]].append(pb)
        top1_changed += int(np.sum(pa != pb))
        inputs_differ += int(differ.sum())
        n += batch
    report |= {
        "inputs": n,
        "inputs_differ": inputs_differ,
        "elements": elements,
        "elements_differ": elements_differ,
        "max_abs_diff": max_diff,
        "top1_changed": top1_changed,
    }
    if labels is not None:
        pa, pb = (np.concatenate(preds[name]) for name in names)
        labels = np.asarray(labels)[:n]
        report["accuracy"] = {names[0]: float(np.mean(pa == labels)), names[1]: float(np.mean(pb == labels))}
        report["right_only_in"] = {
            names[0]: int(np.sum((pa == labels) & (pb != labels))),
            names[1]: int(np.sum((pb == labels) & (pa != labels))),
        }
    return report


def format_report(name: str, r: dict) -> str:
    """One paragraph for a compare_profiles() report."""
    a, b = r["profiles"]
    if "refused" in r:
        return f"{name}: " + "; ".join(f"{p} refuses it: {e}" for p, e in r["refused"].items())
    head = (
        f"{name}: {a} vs {b}: {r['inputs_differ']}/{r['inputs']} inputs with differing outputs "
        f"({r['elements_differ']}/{r['elements']} elements, max |diff| {r['max_abs_diff']:g}); "
        f"top-1 changes on {r['top1_changed']}"
    )
    lines = [head]
    if "accuracy" in r:
        acc = r["accuracy"]
        lines.append(
            f"  top-1 accuracy {a} {acc[a] * 100:.2f} %, {b} {acc[b] * 100:.2f} % "
            f"(right only in {a}: {r['right_only_in'][a]}, only in {b}: {r['right_only_in'][b]})"
        )
    return "\n".join(lines)
