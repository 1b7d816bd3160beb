"""Throughput and latency of the engine against LiteRT, measured in one process, interleaved.

    python scripts/bench.py                 # full report: table, out/bench.json, out/bench.png
    python scripts/bench.py --quick         # a few iterations (CI smoke)
    python scripts/bench.py --threads 1 2 --cases mnist_b1 ssd_b1
    python scripts/bench.py --zoo           # issue 13: every mirror model, the contention cases (long)
    python scripts/bench.py --readme out/bench.json   # regenerate README.md's speed table from it

The cases are benchmarks/cases.py's (the pytest-benchmark suite runs the same ones); each case's
outputs are compared with the oracle once before it is timed. Figures are per image.

For each case and thread count, the runners (engine, LiteRT XNNPACK, LiteRT builtin without
XNNPACK, LiteRT reference kernels) take turns on the same input, so a drift of the machine's
speed hits them alike. Only the reference kernels are bit-exact with the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine
from benchmarks import zoo
from benchmarks.cases import (  # the case list shared with benchmarks/test_bench.py
    CASES,
    LITERT_KINDS,
    REFERENCE_OK,
    case_input,
    check_outputs,
    litert_runner,
    mirror_models,
    nominal_mhz,
)
from engine.atomic import atomic_path, write_bytes
from engine.registry import model_file
from engine.stats import model_macs


def time_calls(fn, x, seconds: float, min_iters: int) -> float:
    """Median-friendly single measurement: mean time of enough calls to fill `seconds`."""
    n, t0 = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < seconds:
        fn(x)
        n += 1
    return (time.perf_counter() - t0) / n


def bench_case(name: str, threads: int, rounds: int, seconds: float) -> dict:
    import numba

    reg_name, batch, lite_batch = CASES[name]
    path = model_file(reg_name)
    m = engine.load(path)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    x = case_input(m, batch)
    check_outputs(name, path, m, x)  # never time wrong answers
    runners = {"engine": (m.run, x, batch)}
    if lite_batch is not None:
        xl = x[:lite_batch]
        for kind in LITERT_KINDS:
            if kind == "litert_reference" and name not in REFERENCE_OK:
                continue
            try:
                runners[kind] = (litert_runner(path, kind, threads, lite_batch), xl, lite_batch)
            except Exception as e:  # noqa: BLE001 (a LiteRT path that cannot load the model is reported)
                print(f"  {name}: {kind} unavailable ({e})", file=sys.stderr)
    for fn, xx, _ in runners.values():
        fn(xx)  # warm-up (compilation, allocation)
    samples = {k: [] for k in runners}
    for _ in range(rounds):
        for k, (fn, xx, _) in runners.items():
            slow = k == "litert_reference"
            samples[k].append(time_calls(fn, xx, seconds / (4 if slow else 1), 1 if slow else 3))
    macs = model_macs(m, 1)
    result = {"case": name, "threads": threads, "batch": batch, "macs_per_image": macs, "runners": {}}
    for k, s in samples.items():
        per_image = [v / runners[k][2] for v in s]
        med = statistics.median(per_image)
        result["runners"][k] = {
            "ms_per_call_median": statistics.median(s) * 1e3,
            "ms_per_image_median": med * 1e3,
            "ms_per_image_min": min(per_image) * 1e3,
            "ms_per_image_max": max(per_image) * 1e3,
            "images_per_s": 1 / med,
            "gmacs_per_s": macs / med / 1e9,
        }
    eng = result["runners"]["engine"]["ms_per_image_median"]
    for k, r in result["runners"].items():
        r["engine_time_ratio"] = eng / r["ms_per_image_median"]  # < 1: the engine is faster
    return result


def int8_peak_gmacs(threads: int) -> float:
    """AVX-512 VNNI: 64 int8 MACs per instruction, 2 per cycle per core, at the nominal clock (the
    current one where no nominal clock is known: main() prints which)."""
    return threads * 128 * nominal_mhz()[0] / 1e3


def micro_kernel_ceiling_gmacs() -> float:
    """What the engine's GEMM micro-kernel sustains on one thread with its data in L1 (4 pixels x
    32 channels, k = 1024): the ceiling of any convolution here, measured rather than assumed."""
    from numba import njit

    from engine.kernels.gemm import OCB, PX, VNNI, Runs, pack_weights, tile

    k, group = 1024, 4 if VNNI else 2
    rng = np.random.default_rng(0)
    x = rng.integers(0, 128, PX * k + 64).astype(np.uint8 if VNNI else np.int16)
    w = pack_weights(rng.integers(-100, 100, (OCB, k)), group)
    acc = np.zeros(PX * OCB, np.int32)

    @njit
    def loop(reps, x, w, acc):
        for _ in range(reps):
            tile(x, w, Runs(0, k, 0, k // group, 1, 0, 0), True, acc, 0, OCB)

    loop(1, x, w, acc)
    reps = 5000
    t = time.perf_counter()
    loop(reps, x, w, acc)
    return reps * PX * OCB * k / (time.perf_counter() - t) / 1e9


def load_to_first_result(reg_name: str, cold: bool) -> float:
    """Seconds from `import engine` + load to the first result, in a fresh process."""
    code = (
        "import time; t=time.perf_counter(); import numpy as np, engine; "
        f"m=engine.load({str(model_file(reg_name))!r}); t0=m.inputs[0]; "
        "m.run(np.zeros((1,*t0.shape[1:]), t0.dtype)); print(time.perf_counter()-t)"
    )
    env = dict(os.environ)
    if cold:
        env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cold-")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    head = f"{'case':<16}{'thr':>4}{'runner':>18}{'ms/img':>10}{'min':>9}{'max':>9}{'img/s':>10}{'GMAC/s':>8}{'eng/x':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        for k, v in r["runners"].items():
            lines.append(
                f"{r['case']:<16}{r['threads']:>4}{k:>18}{v['ms_per_image_median']:>10.3f}{v['ms_per_image_min']:>9.3f}"
                f"{v['ms_per_image_max']:>9.3f}{v['images_per_s']:>10.0f}{v['gmacs_per_s']:>8.1f}"
                f"{v['engine_time_ratio']:>7.2f}"
            )
    return "\n".join(lines)


def chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['case']}\n{r['threads']}t" for r in results]
    kinds = ["engine", "litert_xnnpack", "litert_builtin", "litert_reference"]
    fig, ax = plt.subplots(figsize=(max(8, len(results) * 1.3), 4.5))
    width = 0.2
    for j, k in enumerate(kinds):
        vals = [r["runners"].get(k, {}).get("images_per_s", 0) for r in results]
        ax.bar([i + (j - 1.5) * width for i in range(len(results))], vals, width, label=k)
    ax.set_yscale("log")
    ax.set_ylabel("images / s (log)")
    ax.set_xticks(range(len(results)), labels, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("engine vs LiteRT, same process, interleaved")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def zoo_main(args) -> int:
    """--zoo: the engine against XNNPACK on every mirror model, then the contention cases."""
    models = mirror_models()
    if args.models:
        unknown = sorted(set(args.models) - set(models))
        if unknown:
            raise SystemExit(f"--models: not in the mirror: {', '.join(unknown)} (known: {', '.join(models)})")
        models = {k: models[k] for k in args.models}
    rounds, seconds, contention = args.rounds, args.seconds, (args.contention_rounds, 2.0)
    if args.quick:
        rounds, seconds, contention = 2, 0.01, (min(args.contention_rounds, 1), 0.3)
    report = zoo.run_zoo(models, rounds, seconds, contention)
    args.out.mkdir(parents=True, exist_ok=True)
    write_bytes(args.out / "bench.json", json.dumps(report, indent=1).encode())
    zoo.chart(report, args.out / "bench.png")
    print(zoo.readme_table(report))
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.png'} in {report['wall_s']:.0f} s")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.3, help="time per measurement")
    ap.add_argument("--quick", action="store_true", help="smoke mode: 2 rounds, tiny measurements")
    ap.add_argument("--out", type=Path, default=Path("out"))
    ap.add_argument("--no-load-time", action="store_true")
    ap.add_argument("--zoo", action="store_true", help="every mirror model both run, and the contention cases")
    ap.add_argument("--models", nargs="+", help="--zoo: only these (file stems, zoo/ ones as zoo/NAME)")
    ap.add_argument("--contention-rounds", type=int, default=5, help="--zoo: rounds of the contention cases")
    ap.add_argument("--readme", type=Path, metavar="BENCH_JSON", help="regenerate README.md's table from it")
    args = ap.parse_args(argv)
    if args.readme:
        zoo.update_readme(ROOT / "README.md", json.loads(args.readme.read_text()))
        print("README.md: speed table regenerated")
        return 0
    if args.zoo:
        return zoo_main(args)
    if args.quick:
        args.rounds, args.seconds = 2, 0.01
    results = []
    for t in args.threads:
        for c in args.cases:
            results.append(bench_case(c, t, args.rounds, args.seconds))
            print(f"  done {c} ({t} threads)", file=sys.stderr)
    print(table(results))
    report = {"results": results, "cpu_count": os.cpu_count(), "int8_peak_gmacs": {}}
    for t in args.threads:
        report["int8_peak_gmacs"][t] = int8_peak_gmacs(t)
        for r in results:
            if r["threads"] == t:
                r["engine_fraction_of_int8_peak"] = r["runners"]["engine"]["gmacs_per_s"] / int8_peak_gmacs(t)
    mhz, source = nominal_mhz()
    report["clock_mhz"] = {"mhz": mhz, "source": source}
    print(f"\nengine fraction of the int8 VNNI peak (clock {mhz:.0f} MHz, {source}):")
    for r in results:
        print(f"  {r['case']:<16} {r['threads']}t  {100 * r['engine_fraction_of_int8_peak']:.1f} %")
    ceiling = micro_kernel_ceiling_gmacs()
    report["micro_kernel_ceiling_gmacs_per_thread"] = ceiling
    print(f"GEMM micro-kernel ceiling, one thread, data in L1: {ceiling:.0f} G multiply-accumulates/s")
    if not args.no_load_time:
        warm = load_to_first_result("ssd_mobilenet_v1", cold=False)
        cold = load_to_first_result("ssd_mobilenet_v1", cold=True)
        warm = load_to_first_result("ssd_mobilenet_v1", cold=False)
        report["load_to_first_result_s"] = {"ssd_warm_cache": warm, "ssd_cold_cache": cold}
        print(
            f"\nload to first result (SSD, fresh process): warm Numba cache {warm:.2f} s, cold {cold:.2f} s"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_bytes(args.out / "bench.json", json.dumps(report, indent=1).encode())
    chart(results, args.out / "bench.png")
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
