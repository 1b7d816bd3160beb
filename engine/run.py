"""`python -m engine.run`: run a registry model (or a .tflite/.npz file) on images and print the answers."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import answers as ans
from . import profiles
from .errors import EngineError, ImageError, InputError
from .tasks import TASKS

EPILOG = """\
examples:
  python -m engine.run                                   # default model (mnist) on a digit drawn by the package
  python -m engine.run --image digit.png --top-k 3
  python -m engine.run --model ssd --image table.jpg --out table_boxes.png
  python -m engine.run --model ssd --image photos/ --out annotated/ --json > detections.json
  python -m engine.run --model person_detect --image me.jpg
  python -m engine.run --model person --image person.bmp --int8 reinterpret   # TFLite Micro's test BMPs
  python -m engine.run --model yolov8n --image pets.jpg --out pets_boxes.png
  python -m engine.run --model deeplabv3 --image bird.bmp --out overlay.png --mask-out mask.png
  python -m engine.run --model movenet --image squat.bmp --out pose.png --json
  python -m engine.run --model model.tflite --labels labels.txt --image cat.jpg
  python -m engine.run --model hello_world --input x.npy   # non-image models take a .npy tensor
  python -m engine.run --list-models

models are fetched by URL into $ENGINE_HOME (default ~/.cache/engine), checked by sha256; offline, point
--mirror or $ENGINE_MODEL_MIRROR at a folder holding the model files.
exit status: 0 ok, 1 other error, 2 bad model file or usage, 3 unsupported model, 4 bad input, 5 bad image,
6 model fetch failed, 130 interrupted.
"""


def _positive(kind: type):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if not v >= 1:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
        return v

    return parse


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be in 0..1")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m engine.run",
        description="Run a quantized TFLite model with the engine (bit-exact with TFLite's reference kernels).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        metavar="NAME|PATH",
        help="registry name or alias (see --list-models; default: "
        "the registry's default, mnist), or a .tflite / .npz file",
    )
    p.add_argument(
        "--image",
        metavar="PATH",
        action="append",
        default=[],
        help="an image file, or a folder (all images in it, not recursive); repeatable",
    )
    p.add_argument(
        "--input",
        metavar="FILE.npy",
        help="a raw input tensor instead of images (float values are "
        "quantized with the input's scale and zero point; a missing batch axis is added)",
    )
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="labels, one per line, or an Ultralytics metadata.yaml (names:); default: the registry's, "
        "else the model file's own (TFLite metadata, Ultralytics metadata)",
    )
    p.add_argument(
        "--task",
        choices=TASKS,
        help="what the model answers (default: read from the graph: detection postprocess op or YOLO head -> "
        "detect, [1,H,W] class map or [1,H,W,C] logits -> segment, [1,1,17,3] -> pose, else classify)",
    )
    p.add_argument(
        "--int8",
        choices=("shift", "reinterpret"),
        help="how 8-bit pixels feed an int8 input: pixel - 128 (shift, what cameras give) or the byte read as "
        "int8 (reinterpret: TFLite Micro's test BMPs such as person.bmp store int8 pixels)",
    )
    p.add_argument("--batch", type=_positive(int), metavar="N", help="images per run (default: up to 32)")
    p.add_argument("--threads", type=_positive(int), metavar="N", help="threads (default: the cores this process may use, README: Threads)")
    p.add_argument(
        "--top-k", type=_positive(int), default=1, metavar="K", help="classes shown per image (default 1)"
    )
    p.add_argument(
        "--score-threshold",
        type=_fraction,
        metavar="T",
        help="detections below this score are dropped (default: the registry's, else 0.3 for "
        "postprocess-op detectors and 0.25 for YOLO)",
    )
    p.add_argument(
        "--iou-threshold",
        type=_fraction,
        default=0.45,
        metavar="T",
        help="YOLO non-maximum suppression: a box overlapping a better one of its class by more is dropped "
        "(default 0.45)",
    )
    p.add_argument(
        "--repeat",
        type=_positive(int),
        default=1,
        metavar="R",
        help="run each batch R times and report the median time, min and max (default 1: one noisy sample)",
    )
    p.add_argument(
        "--numerics",
        choices=list(profiles.PROFILES),
        default=profiles.DEFAULT,
        help="whose arithmetic to equal bit for bit: reference (LiteRT's reference kernels, default), "
        "tflm (TFLite Micro, the microcontroller runtime; refuses what it cannot run) or litert (LiteRT's "
        "default interpreter on x86: XNNPACK + optimized builtin kernels)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="write the image annotated with the answers (.png/.jpg); with several images, a folder",
    )
    p.add_argument(
        "--mask-out",
        metavar="FILE.png",
        help="segmentation: write the class map (pixel value = class id, at the image's size); "
        "with several images, a folder",
    )
    p.add_argument("--list-models", action="store_true", help="list the registry's models and exit")
    p.add_argument(
        "--mirror",
        metavar="DIR",
        help="folder with model files to use before downloading (default $ENGINE_MODEL_MIRROR)",
    )
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    return p


# ---------------------------------------------------------------- inputs


@dataclass
class Item:
    name: str  # what the user calls it (a path, or "<sample digit 3>")
    source: object  # path or PIL image or array


def collect_images(paths: list[str]) -> list[Item]:
    """Files as given; folders expand to their image files (by extension, sorted, not recursive)."""
    from PIL import Image

    exts = {e for e in Image.registered_extensions()}
    items = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f
                for f in p.iterdir()
                if f.is_file() and f.suffix.lower() in exts and not f.name.startswith(".")
            )
            if not found:
                raise ImageError(f"{p}: no image files in this folder")
            items += [Item(str(f), f) for f in found]
        elif p.exists():
            items.append(Item(str(p), p))
        else:
            raise ImageError(f"{p}: no such file or folder")
    return items


def load_tensor(path: str, info) -> np.ndarray:
    """A .npy file -> an input tensor of the model's dtype, with a batch axis."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot read a .npy array ({e})") from None
    return as_input(a, info, path)


def as_input(a, info, name: str = "input") -> np.ndarray:
    a = np.asarray(a)
    if a.shape == tuple(info.shape[1:]) or (
        a.ndim == len(info.shape) - 1 and a.size == int(np.prod(info.shape[1:]))
    ):
        a = a.reshape(info.shape[1:])[None]
    want = np.dtype(info.dtype)
    if a.dtype == want:
        return a
    if a.dtype.kind == "f" and want.kind in "iu":
        if not info.scale > 0:
            raise InputError(f"{name}: float values for the unquantized {want} input '{info.name}'")
        return info.quantize(a)
    if a.dtype.kind in "iub" and want.kind in "iu":
        lim = np.iinfo(want)
        if a.size and (a.min() < lim.min or a.max() > lim.max):
            raise InputError(f"{name}: values outside {want}'s range {lim.min}..{lim.max}")
        return a.astype(want)
    if want.kind == "f":
        return a.astype(want)
    raise InputError(f"{name}: dtype {a.dtype} cannot feed the {want} input '{info.name}'")


# ---------------------------------------------------------------- running


def _set_threads(n: int | None) -> int:
    import numba

    if n is not None:
        limit = numba.config.NUMBA_NUM_THREADS
        if n > limit:
            raise InputError(f"--threads {n}: at most {limit} here (set NUMBA_NUM_THREADS to allow more)")
        numba.set_num_threads(n)
    return numba.get_num_threads()


class Timer:
    """Inference time per run, the first run of each input kept apart (it plans that batch size's
    buffers); with --repeat R every batch runs R more times and the median and spread are reported."""

    def __init__(self, repeat: int):
        self.repeat = repeat
        self.first_s: float | None = None
        self.total_s = 0.0
        self.per_input: list[float] = []  # seconds per input of every timed run

    def run(self, model, x) -> list[np.ndarray]:
        n = x[0].shape[0] if isinstance(x, list) else x.shape[0]
        if self.first_s is None:
            t = time.perf_counter()
            model.run(x)
            self.first_s = time.perf_counter() - t
        times = []
        for _ in range(self.repeat):
            t = time.perf_counter()
            outputs = model.run(x)
            times.append(time.perf_counter() - t)
        self.total_s += float(np.median(times))
        self.per_input += [t / n for t in times]
        return outputs

    def spread_ms(self) -> tuple[float, float]:
        return (min(self.per_input) * 1e3, max(self.per_input) * 1e3) if self.per_input else (0.0, 0.0)


def _out_path(out: str | None, n_items: int, name: str, flag: str = "--out") -> Path | None:
    if out is None:
        return None
    p = Path(out)
    if n_items > 1 or p.is_dir() or out.endswith(("/", os.sep)):
        if p.suffix and not p.is_dir():
            raise InputError(f"{flag} {out}: with {n_items} images, {flag} must be a folder")
        return p / f"{Path(name).stem or 'image'}.png"
    return p


def _check_args(args: argparse.Namespace, items: list[Item]) -> None:
    """Cheap checks first: a typo in a path should not wait for a model download."""
    if args.input and not Path(args.input).is_file():
        raise InputError(f"{args.input}: no such file")
    for flag, value in (("--out", args.out), ("--mask-out", args.mask_out)):
        if value:
            from .postprocess import image_format

            if args.input or (not items and args.image):
                raise InputError(f"{flag} draws on images: pass --image")
            target = _out_path(value, len(items), items[0].name if items else "input", flag)
            image_format(target)
            if flag == "--mask-out" and target.suffix.lower() != ".png":
                raise InputError(f"--mask-out {value}: the class map is written as .png")


def run(args: argparse.Namespace) -> int:
    from . import registry
    from .compile_watch import CompileWatch

    if args.mirror is not None and not Path(args.mirror).is_dir():
        raise registry.FetchError(f"--mirror {args.mirror}: no such folder")
    cache = registry.Cache(mirror=args.mirror, mirror_only=args.mirror is not None)
    if args.list_models:
        return list_models(cache, args.json)
    if args.input and args.image:
        raise InputError("--input and --image cannot be combined")
    threads = _set_threads(args.threads)
    items: list[Item] = collect_images(args.image) if args.image else []
    _check_args(args, items)

    with CompileWatch() as watch:
        res = registry.resolve(
            args.model, cache=cache, labels_path=args.labels, warmup=False, numerics=args.numerics
        )
        res.model.run(
            [np.zeros((1, *t.shape[1:]), t.dtype) for t in res.model.inputs]
        )  # compile / load kernels
    setup = _Setup.of(res, args)
    tensor_items = _tensor_items(args, setup, items)
    if (args.out or args.mask_out) and tensor_items:
        raise InputError("--out draws on images: pass --image")
    if args.mask_out and setup.ctx.task.kind != "segment":
        raise InputError(f"--mask-out writes a segmentation map; {res.name} answers '{setup.ctx.task.kind}'")

    timer = Timer(args.repeat)
    failures: list[dict] = []
    if tensor_items:
        results, pre_s, n_done = [], 0.0, 0
        for name, x in tensor_items:
            outputs = timer.run(res.model, setup.feed(x))
            n_done += x.shape[0]
            names = [name] if x.shape[0] == 1 else [f"{name}[{i}]" for i in range(x.shape[0])]
            results += [ans.public(a) for a in ans.answers(setup.ctx, outputs, names, None)]
    else:
        results, pre_s, n_done = _run_images(items, setup, args, timer, failures)

    timing = _timing(watch, timer, pre_s, n_done, threads, args.repeat)
    if args.json:
        doc = {"model": res.name, "source": res.source, "numerics": res.model.numerics}
        doc |= {"task": setup.ctx.task.kind, "results": results}
        if failures:
            doc["errors"] = failures
        print(json.dumps({**doc, "timing": timing}, indent=2))
    else:
        for r in results if tensor_items else []:  # image results were printed as they came
            print(ans.text(r, setup.ctx.task.kind, args.top_k))
        if res.model.numerics != profiles.DEFAULT:
            print(f"numerics: {res.model.numerics} ({profiles.get(res.model.numerics).runtime})")
        if n_done:
            print(_timing_text(timing, watch))
    if failures:
        if len(items) > 1:
            print(
                f"error: {len(failures)} of {len(items)} images could not be read (see above)",
                file=sys.stderr,
            )
        return ImageError.exit_code
    return 0


def _timing(watch, timer: Timer, pre_s: float, n_done: int, threads: int, repeat: int) -> dict:
    infer_s = timer.total_s
    lo, hi = timer.spread_ms()
    return {
        "load_ms": watch.load_s * 1e3,
        "compile_ms": watch.compile_s * 1e3,
        "kernels_compiled": watch.compiled,
        "first_run_ms": (timer.first_s or 0.0) * 1e3,
        "preprocess_ms": pre_s * 1e3,
        "inference_ms": infer_s * 1e3,
        "images": n_done,
        "ms_per_image": infer_s * 1e3 / max(n_done, 1),
        "ms_per_image_min": lo,
        "ms_per_image_max": hi,
        "images_per_s": n_done / infer_s if infer_s > 0 else None,
        "threads": threads,
        "repeat": repeat,
    }


def _timing_text(t: dict, watch) -> str:
    n, threads = t["images"], t["threads"]
    if t["repeat"] > 1:
        runs = f"median of {t['repeat']} runs, min {t['ms_per_image_min']:.3f}, max {t['ms_per_image_max']:.3f} ms"
    else:
        runs = "one run, noisy: --repeat 20 gives the median and spread"
    kernels = (
        f"kernels compiled {watch.compile_s:.1f} s (first run only, cached on disk)"
        if watch.compiled
        else "kernels from the cache"
    )
    return (
        f"time: {t['ms_per_image']:.3f} ms per input ({runs}; {n} input{'s' * (n != 1)}, "
        f"{threads} thread{'s' * (threads != 1)}); model load {t['load_ms']:.0f} ms, {kernels}"
    )


@dataclass
class _Setup:
    """The model with its task, answer context and preprocessing, decided once per run."""

    res: object
    ctx: ans.Context
    spec: dict | None
    images: bool  # whether the model takes images

    @classmethod
    def of(cls, res, args: argparse.Namespace) -> _Setup:
        from .preprocess import image_layout
        from .tasks import task_for

        model, entry = res.model, res.entry
        task = task_for(model.graph, args.task or (entry.task if entry else None))
        spec = dict(entry.preprocess) if entry and entry.preprocess else None
        if entry is None and task.head in ("yolov8", "yolov5"):
            spec = {"kind": "scale", "resize": "bilinear", "letterbox": 114}  # Ultralytics' pipeline
        if args.int8:
            spec = {**(spec or {}), "int8": args.int8}
        try:
            h, w, _, _ = image_layout(model.inputs[0])
            images = entry is None or entry.preprocess is not None
        except InputError:
            h = w = 0
            images = False
        images = images and task.kind != "regress"
        threshold = args.score_threshold
        if threshold is None:
            threshold = (
                entry.score_threshold
                if entry and entry.score_threshold is not None
                else (0.3 if task.head == "postprocess" else 0.25)
            )
        labels = res.labels
        offset = entry.label_offset if entry else (1 if labels and labels[0] == "???" else 0)
        ctx = ans.Context(
            task, model, labels, offset, threshold, args.iou_threshold, args.top_k,
            bool(spec and spec.get("letterbox") is not None), (w, h),
        )  # fmt: skip
        setup = cls(res, ctx, spec, images)
        setup.warn_labels()
        return setup

    def n_classes(self) -> int | None:
        t, m = self.ctx.task, self.ctx.model
        shape = m.outputs[t.outputs[0]].shape if m.outputs else ()
        if t.kind == "classify" and len(shape) >= 2:
            return int(np.prod(shape[1:]))
        if t.head == "postprocess":
            op = next((o for o in m.graph.ops if o.type == "TFLite_Detection_PostProcess"), None)
            return int(op.options.get("num_classes", 0)) or None if op else None
        if t.head == "yolov8":
            return shape[1] - 4
        if t.head == "yolov5":
            return shape[2] - 5
        if t.head == "logits":
            return shape[3]
        return None

    def warn_labels(self) -> None:
        labels, n = self.ctx.labels, self.n_classes()
        if labels is None or n is None:
            return
        usable = len(labels) - self.ctx.label_offset
        if usable != n:
            where = self.res.labels_from or "the labels"
            print(
                f"warning: {len(labels)} labels from {where} for {n} classes of the model "
                f"(label offset {self.ctx.label_offset}): labels may be shifted; classes without one "
                "are named 'class N'",
                file=sys.stderr,
            )

    def feed(self, x: np.ndarray):
        """The input, plus zeros (the zero point) for extra inputs such as a recurrent state."""
        inputs = self.ctx.model.inputs
        if len(inputs) == 1:
            return x
        n = x.shape[0]
        return [x] + [np.full((n, *t.shape[1:]), t.zero_point, t.dtype) for t in inputs[1:]]


def _tensor_items(args, setup: _Setup, items: list[Item]) -> list[tuple[str, np.ndarray]]:
    """What to run on when it is not images: a tensor, or the model's built-in sample."""
    res, entry, info = setup.res, setup.res.entry, setup.res.model.inputs[0]
    if len(res.model.inputs) > 1:
        rest = ", ".join(f"'{t.name}'" for t in res.model.inputs[1:])
        print(f"note: {res.name} has {len(res.model.inputs)} inputs; {rest} are fed zeros", file=sys.stderr)
    if args.input:
        return [(args.input, load_tensor(args.input, info))]
    if items:
        if not setup.images:
            raise InputError(
                f"model {res.name} does not take images (input '{info.name}' {list(info.shape)} "
                f"{np.dtype(info.dtype)}): pass --input FILE.npy"
            )
        return []
    if entry is not None and isinstance(entry.sample, list):
        return [("<sample " + json.dumps(entry.sample) + ">", as_input(entry.sample, info))]
    if _takes_digit(entry, info):
        from .sample import DEFAULT_DIGIT, sample_digit

        items.append(Item(f"<sample digit {DEFAULT_DIGIT}>", sample_digit(DEFAULT_DIGIT)))
        return []
    if setup.images:
        raise InputError(f"model {res.name} needs an input: pass --image PATH (or --input FILE.npy)")
    raise InputError(
        f"model {res.name} does not take images: pass --input FILE.npy (a tensor {list(info.shape)}, "
        f"{np.dtype(info.dtype)}; float values are quantized with the input's scale and zero point)"
    )


def _guess_task(model) -> str:
    """The task read from the model's graph (engine.tasks), for callers such as engine/evaluation.py."""
    from .tasks import detect_task

    return detect_task(model.graph).kind


def _takes_digit(entry, info) -> bool:
    if entry is not None:
        return entry.sample == "digit"
    return tuple(info.shape[1:]) in ((28, 28, 1), (28, 28))


def _decode(items: list[Item], pre, failures: list[dict]) -> tuple[list[Item], list]:
    """Decode each image; one that cannot be read is reported (stderr, JSON) and skipped."""
    import warnings

    good, originals = [], []
    for it in items:
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                originals.append(pre.image(it.source))
            for w in seen:
                print(f"warning: {it.name}: {w.message}", file=sys.stderr)
            good.append(it)
        except ImageError as e:
            failures.append({"image": it.name, "error": one_line(e)})
            print(f"error: {one_line(e)}", file=sys.stderr)
    return good, originals


def _run_images(items, setup: _Setup, args, timer: Timer, failures: list[dict]):
    from .preprocess import Preprocessor

    model, ctx = setup.ctx.model, setup.ctx
    if args.out and ctx.task.kind == "regress":
        raise InputError("--out draws on images; this model does not take images")
    pre = Preprocessor(model.inputs[0], setup.spec)
    batch = args.batch or min(len(items), 32)
    results, pre_s = [], 0.0
    used: set[Path] = set()
    bar = _bar(len(items), batch)
    emit = _emitter(bar, args)
    try:
        for start in range(0, len(items), batch):
            t = time.perf_counter()
            chunk, originals = _decode(items[start : start + batch], pre, failures)
            if not chunk:
                continue
            x = np.stack([pre.tensor(img) for img in originals])
            pre_s += time.perf_counter() - t
            outputs = timer.run(model, setup.feed(x))
            found = ans.answers(ctx, outputs, [it.name for it in chunk], [img.size for img in originals])
            for it, img, a in zip(chunk, originals, found):
                _write_pictures(setup, args, len(items), it, img, a, used)
                results.append(ans.public(a))
                if not args.json:
                    emit(ans.text(a, ctx.task.kind, args.top_k))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return results, pre_s, len(results)


def _unique(out: Path, name: str, used: set[Path]) -> Path:
    k = 1
    while out in used:  # two inputs named alike (a/x.jpg, b/x.jpg) keep both pictures
        k += 1
        out = out.with_name(f"{Path(name).stem}_{k}{out.suffix}")
    used.add(out)
    return out


def _write_pictures(setup: _Setup, args, n_items: int, it: Item, img, a: dict, used: set[Path]) -> None:
    from . import postprocess as pp
    from . import segment

    if args.out:
        out = _unique(_out_path(args.out, n_items, it.name), it.name, used)
        pp.save_image(ans.draw(setup.ctx, img, a), out)
        a["annotated"] = str(out)
    if args.mask_out and setup.ctx.task.kind == "segment":
        out = _unique(_out_path(args.mask_out, n_items, it.name, "--mask-out"), it.name, used)
        segment.save_mask(segment.to_size(a["_map"], img.size), out)
        a["mask"] = str(out)


def _bar(total: int, batch: int):
    if total <= batch:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="img", file=sys.stderr, disable=None, dynamic_ncols=True)


def _emitter(bar, args):
    if bar is None or getattr(bar, "disable", True):
        return print
    return lambda text: bar.write(text, file=sys.stdout)


def list_models(cache, as_json: bool) -> int:
    reg = cache.registry
    rows = []
    for name in reg.names():
        e = reg.models[name]
        if (cache.models_dir / e.file).is_file():
            where = "cached"
        elif cache.mirror is not None and (cache.mirror / e.file).is_file():
            where = "mirror"
        else:
            where = "download"
        rows.append(
            {
                "name": name,
                "default": name == reg.default,
                "aliases": list(e.aliases),
                "task": e.task,
                "file": e.file,
                "available": where,
                "url": reg.files[e.file].url,
                "description": e.description,
            }
        )
    if as_json:
        print(json.dumps({"registry": reg.source, "cache": str(cache.home), "models": rows}, indent=2))
        return 0
    names = [r["name"] + (" (default)" if r["default"] else "") for r in rows]
    w = max(len(n) for n in names)
    wf = max(len(r["file"]) for r in rows)
    print(f"{'name':<{w}}  {'task':<8}  {'file':<{wf}}  {'from':<8}  description")
    for n, r in zip(names, rows):
        alias = f" [alias: {', '.join(r['aliases'])}]" if r["aliases"] else ""
        print(f"{n:<{w}}  {r['task']:<8}  {r['file']:<{wf}}  {r['available']:<8}  {r['description']}{alias}")
    print(f"\ncache: {cache.home}" + (f"; mirror: {cache.mirror}" if cache.mirror else ""))
    return 0


# ---------------------------------------------------------------- error handling shared with scripts/


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) if str(e) else type(e).__name__
    return text


def guarded(fn, args, debug: bool) -> int:
    """Run fn(args); engine errors become one 'error: ...' line on stderr and their exit code."""
    try:
        return fn(args)
    except EngineError as e:
        if debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; not an error, and no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, MemoryError) as e:
        if debug:
            raise
        what = (
            f"{e.filename}: {e.strerror}"
            if isinstance(e, OSError) and e.filename and e.strerror
            else one_line(e)
        )
        print(f"error: {what}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(run, args, args.debug)


if __name__ == "__main__":
    sys.exit(main())
