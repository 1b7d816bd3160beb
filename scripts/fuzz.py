"""Long local fuzz runs of engine.load + run(): mutated .tflite and .npz bytes in crash-isolated workers.

    python scripts/fuzz.py --cases 50000                      # until 50,000 cases
    python scripts/fuzz.py --minutes 30 --seed 7              # for 30 minutes, from seed 7
    python scripts/fuzz.py --bases mnist_tflite,/path/model.tflite --cases 5000
    python scripts/fuzz.py --graphs --minutes 30 --seed 5000  # random valid graphs vs the reference
    python scripts/fuzz.py --fields --cases 5000              # fields of valid graphs mutated
    python scripts/fuzz.py --graphs --numerics tflm --minutes 30   # a profile against its own oracle

--graphs: random valid graphs of 1-3 ops (tests/graph_fuzz.py), 12 chains per model, every tensor compared
with the reference kernels at batch 1 and 3; a failing chain is printed with its seed. --fields: fields of
such graphs changed, run in crash-isolated workers, and compared with the reference where both run them.
--numerics litert / tflm: the same against LiteRT's default interpreter / TFLite Micro (tests/graph_fuzz.py).

Bases: mnist_tflite, mnist_npz (the shared MNIST model and its .npz), small_tflite, small_npz (a small
built int8 graph), or paths to .tflite / .npz files. Cases are drawn by hypothesis from consecutive seeds
in rounds (one round = --round cases per base); every failure (a crash, hang, or exception outside
engine.EngineError) is written to --out as a file engine.load() reproduces, next to its JSON descriptor.
Exit status 1 when anything failed. See tests/fuzz_worker.py for the mutations and the worker protocol.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz_worker import (
    generate_cases,
    is_failure,
    npz_bytes,
    run_cases,
    shared_models_dir,
    small_model_bytes,
    write_reproducer,
)

NAMED = ("mnist_tflite", "mnist_npz", "small_tflite", "small_npz")


def prepare_bases(names: list[str], tmp: Path) -> dict[str, str]:
    out = {}
    for name in names:
        if name in NAMED:
            src = (
                small_model_bytes()
                if name.startswith("small")
                else (shared_models_dir() / "mnist_uint8.tflite").read_bytes()
            )
            data = npz_bytes(src) if name.endswith("_npz") else src
        else:
            path = Path(name)
            data = path.read_bytes()
            name = path.name
        out[name] = str(tmp / name)
        Path(out[name]).write_bytes(data)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=0, help="stop after this many cases (0: no limit)")
    ap.add_argument("--minutes", type=float, default=0, help="stop after this much time (0: no limit)")
    ap.add_argument("--seed", type=int, default=1, help="first hypothesis seed")
    ap.add_argument("--bases", default=",".join(NAMED), help="comma-separated base names or model paths")
    ap.add_argument("--round", type=int, default=500, help="cases per base per round")
    ap.add_argument("--batch-size", type=int, default=250, help="cases per worker process")
    ap.add_argument("--workers", type=int, default=2, help="worker processes at once")
    ap.add_argument("--case-timeout", type=float, default=60.0, help="seconds before a case counts as hung")
    ap.add_argument(
        "--out", type=Path, default=Path("/tmp/engine_fuzz_failures"), help="where failing cases are written"
    )
    ap.add_argument("--graphs", action="store_true", help="semantic fuzz: random valid graphs vs the reference")
    ap.add_argument("--fields", action="store_true", help="structural fuzz: fields of valid graphs mutated")
    ap.add_argument(
        "--numerics",
        choices=("reference", "litert", "tflm"),
        default="reference",
        help="--graphs / --fields: the profile checked, against its own oracle",
    )
    args = ap.parse_args(argv)
    if not args.cases and not args.minutes:
        args.cases = 10_000
    if args.graphs or args.fields:
        return graph_main(args)

    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    totals: Counter = Counter()
    failures = 0
    seed = args.seed
    done = 0
    with tempfile.TemporaryDirectory(prefix="fuzz_bases_") as d:
        bases = prepare_bases([b for b in args.bases.split(",") if b], Path(d))
        while True:
            for base, path in bases.items():
                if (args.cases and done >= args.cases) or (deadline and time.monotonic() > deadline):
                    break
                n = min(args.round, args.cases - done) if args.cases else args.round
                cases = generate_cases(base, Path(path).read_bytes(), n, seed=seed)
                t0 = time.monotonic()
                results = run_cases(
                    cases,
                    bases,
                    batch_size=args.batch_size,
                    workers=args.workers,
                    case_timeout=args.case_timeout,
                )
                outcomes = Counter(r.split(" ")[0] for r in results)
                totals.update(outcomes)
                done += len(cases)
                print(
                    f"seed {seed} {base}: {len(cases)} cases in {time.monotonic() - t0:.1f} s {dict(outcomes)}",
                    flush=True,
                )
                for case, result in zip(cases, results):
                    if is_failure(result):
                        failures += 1
                        path_out = write_reproducer(case, bases, args.out)
                        print(
                            f"  FAIL {result[:400]}\n       reproduce: engine.load('{path_out}')", flush=True
                        )
            else:
                seed += 1
                continue
            break
    print(f"{done} cases, {failures} failures; outcomes {dict(totals)}")
    return 1 if failures else 0


def graph_main(args) -> int:
    """--graphs / --fields: from --seed on, one model (or mutated graph) per seed, until --cases or --minutes."""
    from tests.graph_fuzz import check_case, compare_mutated, generate, mutated_model

    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    seed, done, failures, outcomes = args.seed, 0, 0, Counter()
    while not ((args.cases and done >= args.cases) or (deadline and time.monotonic() > deadline)):
        n = min(args.round, args.cases - done) if args.cases else args.round
        seeds = list(range(seed, seed + n))
        seed += n
        done += n
        if args.graphs:
            for s in seeds:
                for line in check_case(generate(s), numerics=args.numerics):
                    failures += 1
                    print(f"  FAIL {line}", flush=True)
            print(f"seeds {seeds[0]}-{seeds[-1]}: {done} models, {failures} failing chains", flush=True)
            continue
        seeds = [s for s in seeds if mutated_model(s) is not None]
        cases = [{"base": "fields", "seed": s, "numerics": args.numerics} for s in seeds]
        results = run_cases(cases, {}, args.batch_size, args.workers, args.case_timeout)
        for s, r in zip(seeds, results):
            outcome = r.split(" ")[0]
            if r == "ok":
                try:
                    outcome = compare_mutated(s, args.numerics)
                except AssertionError as e:
                    outcome, r = "differs", str(e)
            outcomes[outcome] += 1
            if is_failure(r) or outcome == "differs":
                failures += 1
                print(f"  FAIL seed {s}: {mutated_model(s)[1]}\n    -> {r[:400]}", flush=True)
        print(f"seeds up to {seed - 1}: {dict(outcomes)}", flush=True)
    print(f"{done} cases, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
