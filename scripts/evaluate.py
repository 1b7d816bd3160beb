"""End-to-end evaluation of the engine: any model on any dataset, and the built-in checks on the shared data.

    python scripts/evaluate.py --model mnist --data ../shared/data/mnist --json      # any model, any dataset
    python scripts/evaluate.py --model flowers.tflite --data photos/ --out results.parquet --workers 4
    python scripts/evaluate.py --model ssd --data photos/ --scheduler tcp://head:8786  # an existing Dask cluster
    python scripts/evaluate.py                        # the built-in checks: mnist + ssd + person
    python scripts/evaluate.py --model mnist --limit 1000
    python scripts/evaluate.py --model all --compare-litert --out-dir out/eval

--data PATH: a folder of images (recursive; a class per subfolder gives labels), MNIST IDX files, or a
        .npy/.npz of input tensors (labels from the .npz's y/labels, or --targets). Prints the summary
        (--json: one JSON object): images, top1/top5 overall and per class, images_per_s, outputs_sha256
        (sha256 of every raw output in dataset order: the same on a laptop and on a cluster), failed items.
        --workers N runs on a Dask LocalCluster (pip install "engine[cluster]"), --scheduler on an existing
        cluster; --out DIR writes a Parquet row per item as shards finish and resumes from it
        (engine/evaluation.py, engine/distributed.py, docs/scale-out.md).

mnist:  the 10,000 MNIST test images (IDX gzip in <data-dir>/mnist), batched: top-1 accuracy (the
        reference kernels score 98.80 %; a full run must match it exactly), confusion matrix, images/s.
ssd:    <data-dir>/ssd/table.jpg through the registry's preprocessing (raw pixels, NEAREST resize):
        every label of table_results.txt must be detected with IoU >= 0.9 and score within 0.02 (the
        loose golden check of NOTES.md), and the detections NOTES.md lists for the reference kernels
        must come out with the same score and box (to 0.05 px of the rounded values).
person: <data-dir>/person/person.bmp -> person, no_person.bmp -> no person, with exactly the outputs
        TFLite Micro gives ([-113, 113] and [57, -57]). These BMPs hold int8 pixels stored as bytes
        (viewed as uint8 the image shows wrapped contrast), so they are fed with int8="reinterpret",
        the way TFLite Micro's test feeds them; camera images use the registry's x - 128.
--numerics tflm: run every model as TFLite Micro computes it (engine.load(..., numerics="tflm")); a
        model TFLite Micro cannot run (the uint8 SSD) is reported as refused. --numerics litert: as LiteRT's
        default interpreter computes it on x86 (XNNPACK delegate + optimized builtin kernels).
--compare reference,tflm: run each model in both profiles and report how many inputs' outputs differ and
        how top-1 moves: MNIST's 10,000 test images (with accuracy), and each --tflite model on --random
        random inputs (MLPerf Tiny: ad01, kws, vww, str_ww). Writes <out-dir>/compare.json.
--compare-litert: also run TFLite's reference kernels (LiteRT BUILTIN_REF, batched via
        resize_tensor_input, in a subprocess; TFLite Micro for person_detect, which LiteRT cannot load)
        on the same input tensors and report every input whose outputs differ in any bit.

Writes <out-dir>/evaluation.json and <out-dir>/mnist_confusion.png (and ssd_table.png), atomically.
Exit status 0 when every check passed, 1 when one failed, else the engine error's exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "engine").is_dir() and str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import engine
from engine import atomic, postprocess, registry
from engine.dataset import read_idx
from engine.errors import InputError, UnsupportedError
from engine.preprocess import Preprocessor, apply_table
from engine.profiles import PROFILES
from engine.profiles.compare import compare_profiles, format_report
from engine.run import guarded

MNIST_REFERENCE_ACCURACY = 0.9880
SSD_IOU, SSD_SCORE_TOL = 0.9, 0.02
# NOTES.md: table.jpg through the reference kernels, in 640x480 pixels, rounded to 0.1 px
SSD_REFERENCE = [
    ("dining table", (24.7, 114.4, 620.5, 446.1), 0.48828125),
    ("knife", (340.6, 243.7, 585.8, 416.3), 0.4609375),
    ("cup", (66.8, 194.7, 200.8, 377.1), 0.42578125),
    ("refrigerator", (310.5, -2.3, 492.1, 123.6), 0.40234375),
    ("book", (183.5, 128.0, 386.4, 214.4), 0.37890625),
    ("book", (184.9, 140.1, 244.0, 202.9), 0.30078125),
]
PERSON_EXPECTED = {"person.bmp": ("person", [-113, 113]), "no_person.bmp": ("no person", [57, -57])}


def default_data_dir() -> Path:
    shared = os.environ.get("SHARED_DIR")
    return Path(shared) / "data" if shared else ROOT.parent / "shared" / "data"


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=None, dynamic_ncols=True)


def _oracle():
    try:
        from tests import oracle
    except ImportError as e:
        raise InputError(f"--compare-litert needs tests/oracle.py from the source checkout ({e})") from None
    return oracle


# ---------------------------------------------------------------- MNIST


def mnist(args, cache: registry.Cache, out_dir: Path) -> dict:
    d = args.data_dir / "mnist"
    images = read_idx(d / "t10k-images-idx3-ubyte.gz", 2051)
    labels = read_idx(d / "t10k-labels-idx1-ubyte.gz", 2049)
    if len(images) != len(labels):
        raise InputError(f"{d}: {len(images)} images but {len(labels)} labels")
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    res = registry.resolve("mnist", cache=cache, numerics=args.numerics)
    m, entry = res.model, res.entry
    pre = Preprocessor(m.inputs[0], entry.preprocess)
    # the test images are already 28x28 8-bit: only the pixel map applies (the identity for this model)
    x_all = apply_table(images[..., None], pre.table, pre.fast)
    n, bs = len(x_all), args.batch
    outputs = np.empty((n, *m.outputs[0].shape[1:]), m.outputs[0].dtype)
    m.run(x_all[: min(bs, n)])  # warm-up: planning and loading compiled kernels are not timed
    infer = 0.0
    with _bar(n, "mnist") as bar:
        for s in range(0, n, bs):
            t = time.perf_counter()
            (y,) = m.run(x_all[s : s + bs])
            infer += time.perf_counter() - t
            outputs[s : s + bs] = y
            bar.update(len(y))
    pred = outputs.reshape(n, -1).argmax(axis=1)
    accuracy = float(np.mean(pred == labels))
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (labels.astype(np.int64), pred), 1)
    report = {
        "images": n,
        "batch": bs,
        "accuracy": accuracy,
        "correct": int(np.sum(pred == labels)),
        "images_per_s": n / infer if infer > 0 else None,
        "confusion": confusion.tolist(),
        "checks": {},
    }
    if n == 10000 and args.numerics == "reference":
        report["checks"]["accuracy_equals_reference_98.80"] = bool(
            round(accuracy, 4) == MNIST_REFERENCE_ACCURACY
        )
    if args.compare_litert:
        oracle = _oracle()
        path = cache.path(entry.file)
        ref_bs = 1000
        runs = [[x_all[s : s + ref_bs]] for s in range(0, n, ref_bs)]
        t = time.perf_counter()
        refs = oracle.reference_run_many(path, runs, preserve_all=False)
        ref_out = np.concatenate([r["outputs"][0] for r in refs]).reshape(outputs.shape)
        differ = np.nonzero(np.any((ref_out != outputs).reshape(n, -1), axis=1))[0]
        report["reference"] = {
            "kernels": "LiteRT BUILTIN_REF",
            "seconds": time.perf_counter() - t,
            "accuracy": float(np.mean(ref_out.reshape(n, -1).argmax(axis=1) == labels)),
            "differing_images": [
                {
                    "index": int(i),
                    "label": int(labels[i]),
                    "engine": outputs[i].tolist(),
                    "reference": ref_out[i].tolist(),
                }
                for i in differ
            ],
        }
        report["checks"]["outputs_equal_reference"] = bool(differ.size == 0)
    if not args.no_plots:
        report["confusion_png"] = str(plot_confusion(confusion, accuracy, out_dir / "mnist_confusion.png"))
    return report


def plot_confusion(confusion: np.ndarray, accuracy: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    shown = np.log1p(confusion)  # the diagonal would flatten every error to the same color
    ax.imshow(shown, cmap="Blues")
    for t in range(10):
        for p in range(10):
            v = confusion[t, p]
            if v:
                ax.text(
                    p,
                    t,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shown[t, p] > shown.max() * 0.6 else "black",
                )
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"MNIST test set: top-1 {accuracy * 100:.2f} % ({confusion.sum()} images)")
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------- SSD


def read_golden(path: Path) -> list[tuple[str, tuple[float, float, float, float], float]]:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 6:
            rows.append((parts[0].replace("_", " "), tuple(float(v) for v in parts[1:5]), float(parts[5])))
    if not rows:
        raise InputError(f"{path}: no 'label x0 y0 x1 y1 score' lines")
    return rows


def ssd(args, cache: registry.Cache, out_dir: Path) -> dict:
    d = args.data_dir / "ssd"
    res = registry.resolve("ssd_mobilenet_v1", cache=cache, numerics=args.numerics)
    m, entry = res.model, res.entry
    pre = Preprocessor(m.inputs[0], entry.preprocess)
    img = pre.image(d / "table.jpg")
    x = pre.tensor(img)[None]
    outputs = m.run(x)  # warm-up
    t = time.perf_counter()
    outputs = m.run(x)
    ms = (time.perf_counter() - t) * 1e3
    (found,) = postprocess.detections(outputs, [img.size], res.labels, entry.label_offset, 0.0)
    golden = []
    for label, box, score in read_golden(d / "table_results.txt"):
        cands = [(postprocess.iou(box, f.box), f) for f in found if f.label == label]
        best = max(cands, key=lambda c: (c[0], -abs(c[1].score - score)), default=(0.0, None))
        ok = best[1] is not None and best[0] >= SSD_IOU and abs(best[1].score - score) <= SSD_SCORE_TOL
        golden.append(
            {
                "label": label,
                "expected_box": list(box),
                "expected_score": score,
                "ok": bool(ok),
                "iou": best[0],
                "score": best[1].score if best[1] else None,
            }
        )
    notes = []
    for label, box, score in SSD_REFERENCE:
        hit = any(
            f.label == label and f.score == score and max(abs(a - b) for a, b in zip(f.box, box)) <= 0.051
            for f in found
        )
        notes.append({"label": label, "box": list(box), "score": score, "ok": bool(hit)})
    report = {
        "image": str(d / "table.jpg"),
        "ms_per_image": ms,
        "detections": [f.to_dict() for f in found],
        "golden": golden,
        "notes_reference": notes,
        "checks": {
            "table_results_found_iou_0.9_score_0.02": all(g["ok"] for g in golden),
            "notes_reference_detections": all(n["ok"] for n in notes),
        },
    }
    if args.compare_litert:
        ref = _oracle().reference_run(cache.path(entry.file), [x], preserve_all=False)
        diffs = [
            k
            for k, (a, b) in enumerate(zip(outputs, ref["outputs"]))
            if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b)
        ]
        report["reference"] = {"kernels": "LiteRT BUILTIN_REF", "differing_outputs": diffs}
        report["checks"]["outputs_equal_reference"] = not diffs
    if not args.no_plots:
        shown = [f for f in found if f.score >= (entry.score_threshold or 0.3)]
        path = out_dir / "ssd_table.png"
        postprocess.save_image(postprocess.draw_detections(img, shown), path)
        report["annotated_png"] = str(path)
    return report


# ---------------------------------------------------------------- person detection


def person(args, cache: registry.Cache, out_dir: Path) -> dict:
    d = args.data_dir / "person"
    res = registry.resolve("person_detect", cache=cache, numerics=args.numerics)
    m, entry = res.model, res.entry
    spec = dict(entry.preprocess or {}, int8="reinterpret")  # these BMPs are int8 dumps (module docstring)
    pre = Preprocessor(m.inputs[0], spec)
    names = list(PERSON_EXPECTED)
    x = np.stack([pre(d / n) for n in names])
    (y,) = m.run(x)
    rows = []
    for n, out in zip(names, y):
        (best,) = postprocess.top_k(out[None], m.outputs[0], res.labels, 1)[0]
        label, want = PERSON_EXPECTED[n]
        rows.append(
            {
                "image": n,
                "label": best.label,
                "score": best.score,
                "output": out.tolist(),
                "expected_label": label,
                "expected_output": want,
                "ok": bool(best.label == label and out.tolist() == want),
            }
        )
    report = {"images": rows, "checks": {"labels_and_outputs_as_tflite_micro": all(r["ok"] for r in rows)}}
    if args.compare_litert:  # LiteRT cannot load this model: TFLite Micro is the reference here
        oracle = _oracle()
        path = cache.path(entry.file)
        ref = [oracle.micro_run(path, [xi[None]])[0][0] for xi in x]
        diffs = [names[i] for i in range(len(names)) if not np.array_equal(ref[i], y[i])]
        report["reference"] = {"kernels": "TFLite Micro", "differing_images": diffs}
        report["checks"]["outputs_equal_reference"] = not diffs
    return report


# ---------------------------------------------------------------- main

TASKS = {"mnist": mnist, "ssd": ssd, "person": person}


def evaluate(args: argparse.Namespace) -> int:
    import numba

    if args.data is not None:
        from engine.evaluate_cli import evaluate_data

        return evaluate_data(args)
    if args.model not in TASKS and args.model != "all":
        raise InputError(f"--model {args.model}: pass --data PATH to evaluate it (built-in checks: {', '.join(TASKS)}, all)")

    if args.threads:
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if not args.data_dir.is_dir():
        raise InputError(f"data folder {args.data_dir} not found (--data-dir or $SHARED_DIR)")
    cache = registry.Cache(mirror=args.mirror, mirror_only=args.mirror is not None)
    out_dir = Path(args.out_dir)
    names = list(TASKS) if args.model == "all" else [args.model]
    report = {"engine": engine.__name__, "threads": numba.get_num_threads(), "data_dir": str(args.data_dir)}
    report["numerics"] = args.numerics
    if args.compare:
        return compare(args, cache, out_dir, report)
    for name in names:
        t = time.perf_counter()
        try:
            report[name] = TASKS[name](args, cache, out_dir)
        except UnsupportedError as e:
            if args.numerics == "reference":
                raise
            report[name] = {"refused": " ".join(str(e).split()), "checks": {}}  # TFLite Micro cannot run it
        report[name]["seconds"] = time.perf_counter() - t
        print(summary(name, report[name]))
    report["ok"] = all(all(report[n]["checks"].values()) for n in names)
    path = out_dir / "evaluation.json"
    atomic.write_text(path, json.dumps(report, indent=2) + "\n")
    print(f"report: {path}" + ("" if report["ok"] else "  -- SOME CHECKS FAILED"))
    return 0 if report["ok"] else 1


def compare(args: argparse.Namespace, cache: registry.Cache, out_dir: Path, report: dict) -> int:
    """--compare A,B: each model in both profiles over its data set (compare_profiles)."""
    names = tuple(args.compare)
    report["compare"] = {}
    if args.model in ("mnist", "all"):
        d = args.data_dir / "mnist"
        images = read_idx(d / "t10k-images-idx3-ubyte.gz", 2051)[: args.limit or None, ..., None]
        labels = read_idx(d / "t10k-labels-idx1-ubyte.gz", 2049)[: len(images)]
        path = cache.path(registry.Registry.load().model("mnist").file)
        batches = (images[s : s + args.batch] for s in range(0, len(images), args.batch))
        report["compare"]["mnist"] = compare_profiles(path, batches, names, labels)
    rng = np.random.default_rng(0)
    for path in args.tflite:
        m = engine.load(path)
        batches = [
            [rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max + 1, (1, *t.shape[1:])).astype(t.dtype)
             for t in m.inputs]
            for _ in range(args.random)
        ]  # fmt: skip
        report["compare"][Path(path).name] = compare_profiles(path, batches, names)
    for name, r in report["compare"].items():
        print(format_report(name, r))
    atomic.write_text(out_dir / "compare.json", json.dumps(report, indent=2) + "\n")
    print(f"report: {out_dir / 'compare.json'}")
    return 0


def summary(name: str, r: dict) -> str:
    lines = []
    if "refused" in r:
        lines.append(f"{name}: refused: {r['refused']}")
    elif name == "mnist":
        ips = f"{r['images_per_s']:.0f} images/s" if r["images_per_s"] else ""
        lines.append(
            f"mnist: top-1 {r['accuracy'] * 100:.2f} % ({r['correct']}/{r['images']}), {ips}, batch {r['batch']}"
        )
        if "reference" in r:
            diff = r["reference"]["differing_images"]
            lines.append(
                f"  reference kernels: top-1 {r['reference']['accuracy'] * 100:.2f} %, "
                f"{len(diff)} image(s) with different outputs"
                + (f": {[e['index'] for e in diff[:20]]}" if diff else "")
            )
    elif name == "ssd":
        lines.append(f"ssd: {len(r['detections'])} detections on table.jpg, {r['ms_per_image']:.1f} ms")
        for g in r["golden"]:
            score = f"{g['score']:.3f}" if g["score"] is not None else "-"
            lines.append(
                f"  golden {g['label']:<14} iou {g['iou']:.3f} score {score} "
                f"(expected {g['expected_score']:.3f}) {'ok' if g['ok'] else 'FAIL'}"
            )
        if "reference" in r:
            lines.append(
                f"  reference kernels: outputs differ: {r['reference']['differing_outputs'] or 'none'}"
            )
    else:
        for row in r["images"]:
            lines.append(
                f"person: {row['image']}: {row['label']} {row['output']} "
                f"(expected {row['expected_label']} {row['expected_output']}) {'ok' if row['ok'] else 'FAIL'}"
            )
        if "reference" in r:
            lines.append(f"  TFLite Micro: differing images: {r['reference']['differing_images'] or 'none'}")
    failed = [k for k, v in r["checks"].items() if not v]
    if failed:
        lines.append(f"  FAILED: {', '.join(failed)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default="all",
        metavar="MODEL",
        help="without --data: mnist, ssd, person or all (the built-in checks); with --data: any registry "
        "name, .tflite or .npz",
    )
    p.add_argument("--limit", type=int, metavar="N", help="only the first N images (MNIST, or --data)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="default: $SHARED_DIR/data or ../shared/data",
    )
    p.add_argument("--batch", type=int, metavar="N", help="images per run (default: MNIST 256, --data 32)")
    p.add_argument("--threads", type=int, metavar="N", help="threads (default: the cores this process may use, README: Threads)")
    p.add_argument(
        "--compare-litert", action="store_true", help="also run TFLite's reference kernels and compare"
    )
    p.add_argument(
        "--numerics",
        choices=list(PROFILES),
        default="reference",
        help="whose arithmetic the engine reproduces (default reference; tflm: TFLite Micro; litert: "
        "LiteRT's default interpreter, XNNPACK + optimized builtin kernels, on x86)",
    )
    p.add_argument(
        "--compare",
        metavar="A,B",
        type=lambda s: s.split(","),
        help="compare two numerics profiles (e.g. reference,tflm) over MNIST and the --tflite models",
    )
    p.add_argument(
        "--tflite", action="append", default=[], metavar="PATH", help="--compare: a model fed --random inputs"
    )
    p.add_argument(
        "--random", type=int, default=1000, metavar="N", help="--compare: random inputs per --tflite model"
    )
    p.add_argument("--out-dir", default="out/eval", metavar="DIR", help="where reports go (default out/eval)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG files")
    p.add_argument("--mirror", metavar="DIR", help="offline model folder (default $ENGINE_MODEL_MIRROR)")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    from engine.evaluate_cli import add_data_arguments, check_data_arguments

    add_data_arguments(p)
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    if args.batch is not None and args.batch < 1:
        p.error("--batch must be at least 1")
    if args.compare and (len(args.compare) != 2 or not set(args.compare) <= set(PROFILES)):
        p.error(f"--compare takes two profiles out of {', '.join(PROFILES)}, e.g. reference,tflm")
    args.batch = args.batch or (256 if args.data is None else 32)
    check_data_arguments(p, args)
    return guarded(evaluate, args, args.debug)


if __name__ == "__main__":
    sys.exit(main())
