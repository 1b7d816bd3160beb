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

from . import profiles
from .errors import EngineError, ImageError, InputError

EPILOG = """\
examples:
  python -m engine.run                                   # default model (mnist) on a digit drawn by the package
  python -m engine.run --image digit.png --top-k 3
  python -m engine.run --model ssd --image table.jpg --out table_boxes.png
  python -m engine.run --model ssd --image photos/ --out annotated/ --json > detections.json
  python -m engine.run --model person_detect --image me.jpg
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
    p.add_argument("--labels", metavar="FILE", help="labels, one per line (for a model given as a file)")
    p.add_argument("--batch", type=_positive(int), metavar="N", help="images per run (default: up to 32)")
    p.add_argument("--threads", type=_positive(int), metavar="N", help="Numba threads (default: all cores)")
    p.add_argument(
        "--top-k", type=_positive(int), default=1, metavar="K", help="classes shown per image (default 1)"
    )
    p.add_argument(
        "--score-threshold",
        type=_fraction,
        metavar="T",
        help="detections below this score are dropped (default: the registry's, else 0.3)",
    )
    p.add_argument(
        "--repeat",
        type=_positive(int),
        default=1,
        metavar="R",
        help="run each batch R times and report the median time (default 1)",
    )
    p.add_argument(
        "--numerics",
        choices=list(profiles.PROFILES),
        default=profiles.DEFAULT,
        help="whose arithmetic to equal bit for bit: reference (LiteRT's reference kernels, default) or "
        "tflm (TFLite Micro, the microcontroller runtime; refuses what it cannot run)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="write the image annotated with the answers (.png/.jpg); with several images, a folder",
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


def _guess_task(model) -> str:
    outs = model.outputs
    if len(outs) == 4 and len(outs[0].shape) == 3 and outs[0].shape[-1] == 4 and outs[0].dtype == np.float32:
        return "detect"
    return "classify"


def _set_threads(n: int | None) -> int:
    import numba

    if n is not None:
        limit = numba.config.NUMBA_NUM_THREADS
        if n > limit:
            raise InputError(f"--threads {n}: at most {limit} here (set NUMBA_NUM_THREADS to allow more)")
        numba.set_num_threads(n)
    return numba.get_num_threads()


class Timer:
    """Inference time per run, the first run kept apart: it loads (or compiles) the Numba kernels.

    The first batch therefore runs twice; every reported time after it is steady state.
    """

    def __init__(self, repeat: int):
        self.repeat = repeat
        self.first_s: float | None = None
        self.total_s = 0.0

    def run(self, model, x: np.ndarray) -> list[np.ndarray]:
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
        return outputs


def _out_path(out: str | None, n_items: int, name: str) -> Path | None:
    if out is None:
        return None
    p = Path(out)
    if n_items > 1 or p.is_dir() or out.endswith(("/", os.sep)):
        if p.suffix and not p.is_dir():
            raise InputError(f"--out {out}: with {n_items} images, --out must be a folder")
        return p / f"{Path(name).stem or 'image'}.png"
    return p


def _text_result(r: dict, task: str, top_k: int) -> str:
    if task == "regress":
        return f"{r['input']}: output {r['output']}"
    if task == "detect":
        dets = r["detections"]
        lines = [
            f"{r['image']}: {len(dets)} detection{'s' * (len(dets) != 1)} (score >= {r['score_threshold']:g})"
        ]
        for d in dets:
            x0, y0, x1, y1 = d["box"]
            lines.append(f"  {d['label']:<16} {d['score']:.3f}  box ({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f})")
        return "\n".join(lines)
    preds = r["predictions"]
    if top_k == 1:
        return f"{r['image']}: {preds[0]['label']} (score {preds[0]['score']:.3f})"
    return "\n".join([f"{r['image']}:"] + [f"  {p['label']:<16} {p['score']:.4f}" for p in preds])


def run(args: argparse.Namespace) -> int:
    from . import registry

    if args.mirror is not None and not Path(args.mirror).is_dir():
        raise registry.FetchError(f"--mirror {args.mirror}: no such folder")
    cache = registry.Cache(mirror=args.mirror)
    if args.list_models:
        return list_models(cache, args.json)
    if args.input and args.image:
        raise InputError("--input and --image cannot be combined")
    threads = _set_threads(args.threads)
    # cheap checks first: a typo in a path should not wait for a model download
    items: list[Item] = collect_images(args.image) if args.image else []
    if args.input and not Path(args.input).is_file():
        raise InputError(f"{args.input}: no such file")
    if args.out:
        from .postprocess import image_format

        if args.input or (not items and args.image):
            raise InputError("--out draws on images: pass --image")
        image_format(_out_path(args.out, len(items), items[0].name if items else "input"))

    t0 = time.perf_counter()
    res = registry.resolve(args.model, cache=cache, labels_path=args.labels, numerics=args.numerics)
    load_s = time.perf_counter() - t0
    model, entry = res.model, res.entry
    task = entry.task if entry else _guess_task(model)
    info = model.inputs[0]
    if len(model.inputs) != 1:
        raise InputError(f"{res.name} has {len(model.inputs)} inputs; this command runs single-input models")
    threshold = args.score_threshold
    if threshold is None:
        threshold = entry.score_threshold if entry and entry.score_threshold is not None else 0.3
    if args.out and task == "regress":
        raise InputError("--out draws on images; this model does not take images")

    # what to run on: a tensor, images, or the model's built-in sample
    tensor_items: list[tuple[str, np.ndarray]] = []
    if args.input:
        tensor_items.append((args.input, load_tensor(args.input, info)))
    elif items:
        pass
    elif entry is not None and isinstance(entry.sample, list):
        tensor_items.append(("<sample " + json.dumps(entry.sample) + ">", as_input(entry.sample, info)))
    elif _takes_digit(entry, info):
        from .sample import DEFAULT_DIGIT, sample_digit

        items.append(Item(f"<sample digit {DEFAULT_DIGIT}>", sample_digit(DEFAULT_DIGIT)))
    else:
        raise InputError(f"model {res.name} needs an input: pass --image PATH (or --input FILE.npy)")
    if args.out and not items:
        raise InputError("--out draws on images: pass --image")
    if items and task == "regress":
        raise InputError(f"model {res.name} does not take images: pass --input FILE.npy")

    timer = Timer(args.repeat)
    results, pre_s, n_done = [], 0.0, 0
    if tensor_items:
        for name, x in tensor_items:
            outputs = timer.run(model, x)
            n_done += x.shape[0]
            names = [name] if x.shape[0] == 1 else [f"{name}[{i}]" for i in range(x.shape[0])]
            answers = _answers(task, outputs, model, res, names, None, threshold, args.top_k)
            results += [{k: v for k, v in a.items() if not k.startswith("_")} for a in answers]  # JSON-able
    else:
        results, pre_s, n_done = _run_images(items, model, res, task, threshold, args, timer)

    infer_s = timer.total_s
    timing = {
        "load_ms": load_s * 1e3,
        "first_run_ms": (timer.first_s or 0.0) * 1e3,
        "preprocess_ms": pre_s * 1e3,
        "inference_ms": infer_s * 1e3,
        "images": n_done,
        "ms_per_image": infer_s * 1e3 / max(n_done, 1),
        "images_per_s": n_done / infer_s if infer_s > 0 else None,
        "threads": threads,
        "repeat": args.repeat,
    }
    if args.json:
        doc = {"model": res.name, "source": res.source, "numerics": model.numerics, "task": task}
        doc |= {"results": results, "timing": timing}
        print(json.dumps(doc, indent=2))
    else:
        for r in results if tensor_items else []:  # image results were printed as they came
            print(_text_result(r, task, args.top_k))
        if model.numerics != profiles.DEFAULT:
            print(f"numerics: {model.numerics} ({profiles.get(model.numerics).runtime})")
        runs = f", median of {args.repeat} runs" if args.repeat > 1 else ""
        print(
            f"time: {timing['ms_per_image']:.3f} ms per input ({n_done} input{'s' * (n_done != 1)}, "
            f"{threads} thread{'s' * (threads != 1)}{runs}); first run {timing['first_run_ms']:.0f} ms "
            f"(loads compiled kernels), model load {timing['load_ms']:.0f} ms"
        )
    return 0


def _takes_digit(entry, info) -> bool:
    if entry is not None:
        return entry.sample == "digit"
    return tuple(info.shape[1:]) in ((28, 28, 1), (28, 28))


def _answers(task, outputs, model, res, names, sizes, threshold, top_k) -> list[dict]:
    from . import postprocess as pp

    entry = res.entry
    if task == "detect":
        sizes = sizes or [(1, 1)] * len(names)
        offset = entry.label_offset if entry else (1 if res.labels and res.labels[0] == "???" else 0)
        found = pp.detections(outputs, sizes, res.labels, offset, threshold)
        return [
            {
                "image": n,
                "size": list(s),
                "score_threshold": threshold,
                "detections": [d.to_dict() for d in f],
                "_found": f,
            }
            for n, s, f in zip(names, sizes, found)
        ]
    if task == "regress":
        y = pp.dequantize(outputs[0], model.outputs[0])
        return [
            {"input": n, "output": y[i].tolist(), "raw": outputs[0][i].tolist()} for i, n in enumerate(names)
        ]
    preds = pp.top_k(outputs[0], model.outputs[0], res.labels, top_k)
    return [
        {"image": n, "predictions": [p.to_dict() for p in ps], "_preds": ps} for n, ps in zip(names, preds)
    ]


def _run_images(items, model, res, task, threshold, args, timer: Timer):
    from . import postprocess as pp
    from .preprocess import Preprocessor

    pre = Preprocessor(model.inputs[0], res.entry.preprocess if res.entry else None)
    batch = args.batch or min(len(items), 32)
    results, pre_s = [], 0.0
    used: set[Path] = set()
    bar = _bar(len(items), batch)
    emit = _emitter(bar, args)
    try:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            t = time.perf_counter()
            originals = [pre.image(it.source) for it in chunk]
            x = np.stack([pre.tensor(img) for img in originals])
            pre_s += time.perf_counter() - t
            outputs = timer.run(model, x)
            answers = _answers(
                task,
                outputs,
                model,
                res,
                [it.name for it in chunk],
                [img.size for img in originals],
                threshold,
                args.top_k,
            )
            for it, img, a in zip(chunk, originals, answers):
                if args.out:
                    out = _out_path(args.out, len(items), it.name)
                    k = 1
                    while out in used:  # two inputs named alike (a/x.jpg, b/x.jpg) keep both pictures
                        k += 1
                        out = out.with_name(f"{Path(it.name).stem}_{k}{out.suffix}")
                    used.add(out)
                    drawn = (
                        pp.draw_detections(img, a["_found"])
                        if task == "detect"
                        else pp.draw_predictions(img, a["_preds"])
                    )
                    pp.save_image(drawn, out)
                    a["annotated"] = str(out)
                a.pop("_found", None)
                a.pop("_preds", None)
                results.append(a)
                if not args.json:
                    emit(_text_result(a, task, args.top_k))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return results, pre_s, len(results)


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
