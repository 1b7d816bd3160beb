"""The benchmark cases, shared by scripts/bench.py and benchmarks/test_bench.py.

Each case: a registry model, the engine's batch, and the batch LiteRT runs (LiteRT cannot batch the
SSD: it is compared per image; None: LiteRT refuses the model). Before any timing, `check_outputs`
compares the engine's outputs on the case's input with the oracle once (the reference kernels, TFLite
Micro for person_detect), so that a benchmark never times wrong answers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CASES = {  # name: (registry model, batch, LiteRT batch)
    "mnist_b1": ("mnist", 1, 1),
    "mnist_b256": ("mnist", 256, 256),
    "ssd_b1": ("ssd_mobilenet_v1", 1, 1),
    "ssd_b8": ("ssd_mobilenet_v1", 8, 1),
    "person_b1": ("person_detect", 1, None),  # LiteRT refuses this model
    "micro_speech_b1": ("micro_speech", 1, 1),
    # the zoo's families (issue 13): int8 per-channel MobileNets, ResNet, MLPerf Tiny
    "mobilenet_v2_b1": ("mobilenet_v2", 1, 1),
    "mobilenet_v1_025_b1": ("mobilenet_v1_025", 1, 1),
    "resnet8_b1": ("resnet8_cifar10", 1, 1),
    "vww_b1": ("vww", 1, 1),
    "kws_b1": ("kws", 1, 1),
    "ad01_b1": ("ad01", 1, 1),
    "str_ww_b1": ("str_ww", 1, 1),
}
# --zoo: every model of the shared mirror (and its zoo/) that the engine and LiteRT both run
ZOO_BATCHES = (1, 64)
ZOO_THREADS = (1, 2)
CONTENTION_MODEL = "ssd_mobilenet_v1_coco_uint8.tflite"  # the model issue 13 measured the collapse on
# the reference kernels are slow: skip them where one run takes seconds
REFERENCE_OK = {"mnist_b1", "ssd_b1", "micro_speech_b1", "person_b1"}
LITERT_KINDS = ("litert_xnnpack", "litert_builtin", "litert_reference")


def mirror_models(root: Path | None = None) -> dict[str, Path]:
    """Every .tflite of the model mirror ($ENGINE_MODEL_MIRROR, else ../shared/models) and its zoo/
    folder, by file stem (a zoo/ name prefixed 'zoo/')."""
    import os

    root = Path(root or os.environ.get("ENGINE_MODEL_MIRROR") or ROOT.parent / "shared" / "models")
    found = {p.stem: p for p in sorted(root.glob("*.tflite"))}
    found.update({f"zoo/{p.stem}": p for p in sorted((root / "zoo").glob("*.tflite"))})
    return found


def case_input(model, batch: int, seed: int = 0) -> np.ndarray:
    """The case's input: full-range random values of the model's input type, batch images."""
    t = model.inputs[0]
    info = np.iinfo(t.dtype)
    rng = np.random.default_rng(seed)
    return rng.integers(info.min, info.max + 1, (batch, *t.shape[1:])).astype(t.dtype)


def check_outputs(name: str, path, model, x: np.ndarray) -> None:
    """The engine's outputs on x equal the oracle's (image by image where the oracle cannot batch)."""
    from tests import oracle

    got = model.run(x)
    _, _, lite_batch = CASES[name]
    if lite_batch is None:  # TFLite Micro runs the batch stored in the model: one image at a time
        wants = [oracle.micro_run(path, [x[i : i + 1]]) for i in range(len(x))]
    elif lite_batch == len(x):
        wants = [oracle.reference_run(path, [x], preserve_all=False)["outputs"]]
    else:
        runs = [[x[i : i + lite_batch]] for i in range(0, len(x), lite_batch)]
        wants = [r["outputs"] for r in oracle.reference_run_many(path, runs, preserve_all=False)]
    for k, g in enumerate(got):
        want = np.concatenate([w[k] for w in wants])
        assert g.dtype == want.dtype and np.array_equal(g, want), (
            f"{name}: output {k} differs from the oracle"
        )


def litert_runner(path, kind: str, threads: int, batch: int):
    """A LiteRT interpreter (XNNPACK, builtin without delegates, or reference kernels) as x -> output."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = {
        "litert_xnnpack": OpResolverType.AUTO,
        "litert_builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "litert_reference": OpResolverType.BUILTIN_REF,
    }[kind]
    it = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    d = it.get_input_details()[0]
    if batch != d["shape"][0]:
        it.resize_tensor_input(d["index"], [batch, *d["shape"][1:]])
    it.allocate_tensors()
    out = it.get_output_details()[0]["index"]  # (once: get_output_details costs 4 us a call, a peer's run)

    def run(x):
        it.set_tensor(d["index"], x)
        it.invoke()
        return it.get_tensor(out)

    return run


def nominal_mhz(cpuinfo: str | None = None, base_khz: str | None = None) -> tuple[float, str]:
    """(MHz, where it came from): the nominal clock from the kernel's base_frequency or the model
    name ("@ 2.30GHz"); else the current clock ("cpu MHz"), which turbo and power saving move."""
    if base_khz is None:
        p = Path("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency")
        base_khz = p.read_text() if p.exists() else ""
    if base_khz.strip():
        return float(base_khz) / 1e3, "nominal (base_frequency)"
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    m = re.search(r"^model name\s*:.*@\s*([\d.]+)\s*GHz", cpuinfo, re.MULTILINE)
    if m:
        return float(m.group(1)) * 1e3, "nominal (model name)"
    m = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.MULTILINE)
    return (float(m.group(1)), "current (cpu MHz: no nominal clock known)") if m else (0.0, "unknown")
