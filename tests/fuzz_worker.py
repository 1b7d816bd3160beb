"""Fuzzing support: base models, byte-level mutations, and a crash-isolating subprocess worker.

A case is a JSON-able dict {"base": name, "muts": [mutation, ...]}: the mutated bytes are rebuilt from
the base model's bytes in the worker, so a failing case is reproduced from its descriptor alone.

    python tests/fuzz_worker.py JOB.json    # runs the cases, one result line per case on stdout

For each case the worker does engine.load(bytes) and, if that succeeds, one run() on a zero input, and
prints "S <i>" before and "R <i> <result>" after it, where result is 'ok', 'engine-error:<Class>' or
'other-exception:<Type>' (plus the message). A worker that dies (signal, abort, timeout) leaves an
unanswered "S <i>": run_cases() records that case as the culprit, re-runs it alone to confirm, and goes
on with the rest of the batch in a fresh worker.
"""

from __future__ import annotations

import copy
import io
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# values worth writing over flatbuffer offsets, lengths, shapes, indices and enums
INTERESTING_INT32 = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    16,
    127,
    128,
    255,
    256,
    1 << 16,
    1 << 24,
    (1 << 31) - 1,
    -1,
    -2,
    -128,
    -(1 << 31),
    0x41414141,
]
MEMORY_LIMIT = 4 << 30  # address space of a worker: a huge allocation is a MemoryError, not an OOM kill


# ----------------------------------------------------------------------------------------------- bases
def small_model_bytes() -> bytes:
    """A small int8 graph of the ops the engine runs: CONV_2D, DEPTHWISE_CONV_2D, ADD, MAX_POOL_2D,
    RESHAPE, FULLY_CONNECTED (about 2 KB, so mutations land on structure rather than on weights)."""
    from tests.tflite_builder import build_model

    rng = np.random.default_rng(7)

    def act(name, shape, scale, zp):
        return {"name": name, "shape": shape, "dtype": "int8", "scale": [scale], "zero_point": [zp]}

    conv_scales = [0.01, 0.02, 0.015, 0.03]
    dw_scales = [0.02, 0.01, 0.03, 0.025]
    tensors = [
        act("x", [1, 6, 6, 2], 0.05, 3),  # 0
        {
            "name": "conv_w",
            "shape": [4, 3, 3, 2],
            "dtype": "int8",
            "data": rng.integers(-127, 128, (4, 3, 3, 2)),
            "scale": conv_scales,
            "zero_point": [0] * 4,
        },  # 1
        {
            "name": "conv_b",
            "shape": [4],
            "dtype": "int32",
            "data": rng.integers(-300, 300, 4),
            "scale": [0.05 * s for s in conv_scales],
            "zero_point": [0] * 4,
        },  # 2
        act("conv_out", [1, 6, 6, 4], 0.1, -5),  # 3
        {
            "name": "dw_w",
            "shape": [1, 3, 3, 4],
            "dtype": "int8",
            "data": rng.integers(-127, 128, (1, 3, 3, 4)),
            "scale": dw_scales,
            "zero_point": [0] * 4,
            "quantized_dimension": 3,
        },  # 4
        {
            "name": "dw_b",
            "shape": [4],
            "dtype": "int32",
            "data": rng.integers(-300, 300, 4),
            "scale": [0.1 * s for s in dw_scales],
            "zero_point": [0] * 4,
        },  # 5
        act("dw_out", [1, 6, 6, 4], 0.12, 2),  # 6
        act("sum", [1, 6, 6, 4], 0.2, -1),  # 7
        act("pool", [1, 3, 3, 4], 0.2, -1),  # 8
        {"name": "shape", "shape": [2], "dtype": "int32", "data": np.array([-1, 36], np.int32)},  # 9
        act("flat", [1, 36], 0.2, -1),  # 10
        {
            "name": "fc_w",
            "shape": [5, 36],
            "dtype": "int8",
            "data": rng.integers(-127, 128, (5, 36)),
            "scale": [0.01],
            "zero_point": [0],
        },  # 11
        {
            "name": "fc_b",
            "shape": [5],
            "dtype": "int32",
            "data": rng.integers(-300, 300, 5),
            "scale": [0.002],
            "zero_point": [0],
        },  # 12
        act("y", [1, 5], 0.3, 4),  # 13
    ]
    ops = [
        {
            "op": "CONV_2D",
            "inputs": [0, 1, 2],
            "outputs": [3],
            "options": {
                "padding": "SAME",
                "stride_w": 1,
                "stride_h": 1,
                "dilation_wfactor": 1,
                "dilation_hfactor": 1,
                "fused_activation_function": "RELU",
            },
        },
        {
            "op": "DEPTHWISE_CONV_2D",
            "inputs": [3, 4, 5],
            "outputs": [6],
            "options": {
                "padding": "SAME",
                "stride_w": 1,
                "stride_h": 1,
                "depth_multiplier": 1,
                "dilation_wfactor": 1,
                "dilation_hfactor": 1,
            },
        },
        {"op": "ADD", "inputs": [3, 6], "outputs": [7]},
        {
            "op": "MAX_POOL_2D",
            "inputs": [7],
            "outputs": [8],
            "options": {
                "padding": "VALID",
                "stride_w": 2,
                "stride_h": 2,
                "filter_width": 2,
                "filter_height": 2,
            },
        },
        {"op": "RESHAPE", "inputs": [8, 9], "outputs": [10], "options": {"new_shape": [-1, 36]}},
        {
            "op": "FULLY_CONNECTED",
            "inputs": [10, 11, 12],
            "outputs": [13],
            "options": {"fused_activation_function": "RELU6"},
        },
    ]
    return build_model(tensors, ops, inputs=[0], outputs=[13])


def shared_models_dir() -> Path:
    return Path(os.environ.get("SHARED_DIR") or ROOT.parent / "shared") / "models"


def npz_bytes(model_bytes: bytes) -> bytes:
    """The engine's own .npz format of a model (engine.load(...).save(...))."""
    import engine

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.npz"
        engine.load(model_bytes).save(path)
        return path.read_bytes()


def tflite_payload_ranges(data: bytes) -> list[tuple[int, int]]:
    """[start, end) of every constant buffer's bytes: mutations that only touch weights are less useful."""
    import tflite

    model = tflite.Model.GetRootAs(data, 0)
    out = []
    for i in range(model.BuffersLength()):
        b = model.Buffers(i)
        if not b.DataIsNone() and b.DataLength() > 0:
            start = b._tab.Vector(b._tab.Offset(4))
            out.append((start, start + b.DataLength()))
    return out


def structure_positions(data: bytes) -> list[int]:
    """Byte positions outside the constant buffers' payloads (flatbuffer tables, vectors, strings)."""
    mask = np.ones(len(data), bool)
    for a, b in tflite_payload_ranges(data):
        mask[a + 16 : b] = False  # keep each payload's first bytes: they are worth a few hits too
    return np.flatnonzero(mask).tolist()


# ------------------------------------------------------------------------------------------- mutations
def apply_bytes(data: bytes, muts: list) -> bytes:
    """Apply byte-level mutations in order: flip, set, int32, trunc, splice, insert, delete."""
    buf = bytearray(data)
    for m in muts:
        kind = m[0]
        if not buf and kind != "insert":
            break
        if kind == "flip":  # ["flip", pos, bit]
            buf[m[1] % len(buf)] ^= 1 << (m[2] & 7)
        elif kind == "set":  # ["set", pos, [bytes]]
            pos = m[1] % len(buf)
            chunk = bytes(m[2])[: len(buf) - pos]
            buf[pos : pos + len(chunk)] = chunk
        elif kind == "int32":  # ["int32", pos, value]: aligned little-endian overwrite
            pos = (m[1] % len(buf)) & ~3
            chunk = int(m[2] & 0xFFFFFFFF).to_bytes(4, "little")[: len(buf) - pos]
            buf[pos : pos + len(chunk)] = chunk
        elif kind == "trunc":  # ["trunc", length]
            del buf[m[1] % (len(buf) + 1) :]
        elif kind == "splice":  # ["splice", src, length, dst]: copy a chunk of the file over another place
            src, dst = m[1] % len(buf), m[3] % len(buf)
            chunk = bytes(buf[src : src + m[2]])[: len(buf) - dst]
            buf[dst : dst + len(chunk)] = chunk
        elif kind == "insert":  # ["insert", pos, [bytes]]
            pos = m[1] % (len(buf) + 1)
            buf[pos:pos] = bytes(m[2])
        elif kind == "delete":  # ["delete", pos, length]
            pos = m[1] % len(buf)
            del buf[pos : pos + m[2]]
        else:
            raise ValueError(f"unknown mutation {m!r}")
    return bytes(buf)


def _json_leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _json_leaves(v, (*path, k))
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            yield from _json_leaves(v, (*path, i))
    yield path


JSON_VALUES = [
    None,
    0,
    -1,
    1,
    2,
    255,
    1 << 31,
    -(1 << 31),
    1 << 62,
    1.5,
    -0.0,
    1e308,
    "x",
    "int8",
    "float32",
    [],
    [0],
    [-1, 1],
    {},
    True,
]


def apply_json(meta: dict, muts: list) -> dict:
    """Structural edits of graph.json: ["jset", leaf k, value k] / ["jdel", leaf k] (k modulo the count)."""
    for m in muts:
        leaves = [p for p in _json_leaves(meta) if p]
        if not leaves:
            break
        path = leaves[m[1] % len(leaves)]
        parent = meta
        for key in path[:-1]:
            parent = parent[key]
        if m[0] == "jset":
            parent[path[-1]] = copy.deepcopy(JSON_VALUES[m[2] % len(JSON_VALUES)])
        elif m[0] == "jdel":
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
    return meta


def rezip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def apply_npz_members(data: bytes, muts: list) -> bytes:
    """Mutations inside the zip members, re-zipped with valid CRCs so they reach the engine's checks:
    ["member", k, [byte mutations]] mutates member k (modulo the count: graph.json, .npy headers and data),
    ["json", [json mutations]] edits graph.json's structure, ["drop", k] removes member k,
    ["add", name, [bytes]] adds a member."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {name: z.read(name) for name in z.namelist()}
    for m in muts:
        names = sorted(members)
        if m[0] == "member" and names:
            name = names[m[1] % len(names)]
            members[name] = apply_bytes(members[name], m[2])
        elif m[0] == "json":
            try:  # an earlier edit may have broken graph.json: then this edit does nothing
                arr = np.load(io.BytesIO(members["graph.json.npy"]), allow_pickle=False)
                meta = apply_json(json.loads(arr.tobytes().decode()), m[1])
            except Exception:  # noqa: BLE001, S112
                continue
            buf = io.BytesIO()
            np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
            members["graph.json.npy"] = buf.getvalue()
        elif m[0] == "drop" and names:
            del members[names[m[1] % len(names)]]
        elif m[0] == "add":
            members[m[1]] = bytes(m[2])
    return rezip(members)


def case_bytes(case: dict, bases: dict[str, bytes]) -> bytes:
    if case["base"] == "fields":  # a valid random graph with fields changed (tests/graph_fuzz.py)
        from tests.graph_fuzz import mutated_model

        return mutated_model(case["seed"])[0]
    data = bases[case["base"]]
    if case.get("npz"):
        data = apply_npz_members(data, case["npz"])
    return apply_bytes(data, case.get("muts", []))


# ---------------------------------------------------------------------------------------- strategies
def byte_mutations(size: int, hot: list[int] | None = None, max_muts: int = 3):
    """A hypothesis strategy of byte-mutation lists for a file of `size` bytes; positions are drawn
    from `hot` (e.g. structure_positions) three times out of four when given."""
    from hypothesis import strategies as st

    anywhere = st.integers(0, max(size - 1, 0))
    pos = (
        st.one_of(st.sampled_from(hot), st.sampled_from(hot), st.sampled_from(hot), anywhere)
        if hot
        else anywhere
    )
    small_bytes = st.lists(st.integers(0, 255), min_size=1, max_size=8)
    one = st.one_of(
        st.tuples(st.just("flip"), pos, st.integers(0, 7)),
        st.tuples(st.just("set"), pos, small_bytes),
        st.tuples(st.just("int32"), pos, st.sampled_from(INTERESTING_INT32)),
        st.tuples(st.just("int32"), pos, st.integers(-(1 << 31), (1 << 31) - 1)),
        st.tuples(st.just("trunc"), anywhere),
        st.tuples(st.just("splice"), pos, st.integers(1, 64), pos),
        st.tuples(st.just("insert"), pos, small_bytes),
        st.tuples(st.just("delete"), pos, st.integers(1, 16)),
    ).map(list)
    return st.lists(one, min_size=1, max_size=max_muts)


def case_strategy(base: str, data: bytes):
    """Cases for one base: byte mutations of a .tflite, or (for a .npz) member / graph.json edits
    re-zipped with valid CRCs, sometimes followed by raw byte mutations of the zip itself."""
    from hypothesis import strategies as st

    if data[:4] != b"PK\x03\x04":
        hot = structure_positions(data)
        return st.fixed_dictionaries({"base": st.just(base), "muts": byte_mutations(len(data), hot, 4)})
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        n_members = len(z.namelist())
        biggest = max(i.file_size for i in z.infolist())
    json_mut = st.one_of(
        st.tuples(st.just("jset"), st.integers(0, 10_000), st.integers(0, len(JSON_VALUES) - 1)),
        st.tuples(st.just("jdel"), st.integers(0, 10_000)),
    ).map(list)
    member_mut = st.one_of(
        st.tuples(
            st.just("member"), st.integers(0, n_members - 1), byte_mutations(min(biggest, 256), None, 3)
        ),
        st.tuples(st.just("json"), st.lists(json_mut, min_size=1, max_size=3)),
        st.tuples(st.just("json"), st.lists(json_mut, min_size=1, max_size=3)),
        st.tuples(st.just("drop"), st.integers(0, n_members - 1)),
        st.tuples(
            st.just("add"),
            st.sampled_from(["t999.npy", "extra.npy", "graph.json.npy"]),
            st.lists(st.integers(0, 255), max_size=32),
        ),
    ).map(list)
    return st.one_of(
        st.fixed_dictionaries({"base": st.just(base), "npz": st.lists(member_mut, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"base": st.just(base), "muts": byte_mutations(len(data), None, 3)}),
    )


def generate_cases(base: str, data: bytes, n: int, seed: int | None = None) -> list[dict]:
    """n cases drawn with hypothesis: derandomized (the same every run) unless a seed is given."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    cases: list[dict] = []

    @settings(
        max_examples=n,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case_strategy(base, data))
    def collect(case):
        cases.append(case)

    if seed is not None:
        collect = hseed(seed)(collect)
    collect()
    return cases


# ---------------------------------------------------------------------------------------------- worker
def run_one(data: bytes, numerics: str = "reference") -> str:
    """engine.load + one run() on zeros; the outcome as 'ok' / 'engine-error:<C>' / 'other-exception:<T>'."""
    import engine

    try:
        m = engine.load(data, numerics=numerics)
    except engine.EngineError as e:
        return f"engine-error:{type(e).__name__} {str(e)[:300]}"
    except Exception as e:  # noqa: BLE001
        return f"other-exception:{type(e).__name__} {str(e)[:300]}"
    try:
        xs = [np.zeros((1, *t.shape[1:]), t.dtype) for t in m.inputs]
    except (ValueError, MemoryError) as e:  # the engine accepted an input no one can allocate
        return f"other-exception:AcceptedHugeInput {[t.shape for t in m.inputs]} ({e})"
    try:
        names = [t.name for t in m.inputs]
        m.run(xs[0] if len(xs) == 1 else dict(zip(names, xs)) if len(set(names)) == len(names) else xs)
        return "ok"
    except engine.EngineError as e:
        return f"engine-error:{type(e).__name__} {str(e)[:300]}"
    except Exception as e:  # noqa: BLE001
        return f"other-exception:{type(e).__name__} {str(e)[:300]}"


def load_bases(paths: dict[str, str]) -> dict[str, bytes]:
    return {name: Path(p).read_bytes() for name, p in paths.items()}


def _selftest(kind: str) -> None:
    if kind == "abort":
        os.abort()
    elif kind == "segv":
        import ctypes

        ctypes.string_at(0)
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "exit":
        os._exit(7)


def worker_main(job_path: str) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    job = json.loads(Path(job_path).read_text())
    bases = load_bases(job["bases"])
    # import engine (and load numba's cache) before the first "S" line: startup is not a case
    import engine  # noqa: F401

    out = sys.stdout
    out.write("READY\n")
    out.flush()
    for i, case in enumerate(job["cases"]):
        out.write(f"S {i}\n")
        out.flush()
        if "selftest" in case:  # the harness's own tests: die or hang on purpose
            _selftest(case["selftest"])
        try:
            data = case_bytes(case, bases)
        except Exception as e:  # noqa: BLE001
            result = f"harness-error:{type(e).__name__} {e}"
        else:
            result = run_one(data, case.get("numerics", "reference")).replace("\n", " ")
        out.write(f"R {i} {result}\n")
        out.flush()


# ---------------------------------------------------------------------------------------------- driver
def _spawn(bases: dict[str, str], cases: list[dict], tmp: Path, tag: str):
    job = tmp / f"job_{tag}.json"
    job.write_text(json.dumps({"bases": bases, "cases": cases}))
    err = open(tmp / f"stderr_{tag}.txt", "w+b")  # noqa: SIM115 - closed by _run_batch
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), str(job)],
        stdout=subprocess.PIPE,
        stderr=err,
        cwd=str(ROOT),
        env=dict(os.environ, PYTHONFAULTHANDLER="1"),
    )
    return proc, err


def _run_batch(
    bases: dict[str, str], cases: list[dict], tmp: Path, tag: str, case_timeout: float, startup_timeout: float
) -> tuple[dict[int, str], int | None, str, str]:
    """Run cases in one worker: (results by index, index of the case that killed it, how, stderr tail)."""
    proc, err = _spawn(bases, cases, tmp, tag)
    results: dict[int, str] = {}
    started: int | None = None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    pending = b""
    deadline = time.monotonic() + startup_timeout
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            proc.kill()
            break
        if not sel.select(timeout=min(left, 1.0)):
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            text = line.decode("utf-8", "replace")
            if text.startswith("S "):
                started = int(text.split()[1])
                # a case may carry its own deadline (the harness's hang self-test: a short one)
                deadline = time.monotonic() + cases[started].get("timeout", case_timeout)
            elif text.startswith("R "):
                _, i, result = text.split(" ", 2)
                results[int(i)] = result
                started = None
    proc.wait()
    sel.close()
    proc.stdout.close()
    err.seek(0)
    tail = err.read()[-3000:].decode("utf-8", "replace")
    err.close()
    rc = proc.returncode
    if rc == 0 and not timed_out and len(results) == len(cases):
        return results, None, "", ""
    if timed_out:
        limit = cases[started].get("timeout", case_timeout) if started is not None else 0
        how = f"timeout (> {limit:.0f} s)" if started is not None else "timeout at startup"
    elif rc < 0:
        import signal

        how = f"signal {signal.Signals(-rc).name}"
    else:
        how = f"exit status {rc}"
    return results, started, how, tail


def run_cases(
    cases: list[dict],
    bases: dict[str, str],
    batch_size: int = 200,
    workers: int = 2,
    case_timeout: float = 60.0,
    startup_timeout: float = 300.0,
    confirm: bool = True,
) -> list[str]:
    """Every case's result. A case that killed its worker gets 'crash:<how> | <stderr tail>' (or
    'crash-in-context:...' when it does not crash alone: then the batch's earlier cases matter)."""
    results: list[str | None] = [None] * len(cases)

    def batch_job(start: int) -> None:
        todo = list(range(start, min(start + batch_size, len(cases))))
        with tempfile.TemporaryDirectory(prefix="fuzz_") as d:
            tmp = Path(d)
            attempt = 0
            while todo:
                attempt += 1
                got, culprit, how, tail = _run_batch(
                    bases, [cases[i] for i in todo], tmp, f"{start}_{attempt}", case_timeout, startup_timeout
                )
                for k, r in got.items():
                    results[todo[k]] = r
                if culprit is None and not how:
                    break
                if culprit is None:  # died outside a case (startup): record on the first unanswered case
                    culprit = min(set(range(len(todo))) - set(got), default=0)
                    how = f"worker failed outside any case ({how})"
                label = "crash"
                if confirm and culprit > 0:  # does it crash alone, in a fresh worker?
                    alone, c2, _, _ = _run_batch(
                        bases,
                        [cases[todo[culprit]]],
                        tmp,
                        f"{start}_{attempt}_alone",
                        case_timeout,
                        startup_timeout,
                    )
                    if c2 is None and 0 in alone:
                        label = "crash-in-context"
                results[todo[culprit]] = f"{label}:{how} | {tail.strip()[-1500:]}"
                todo = [i for k, i in enumerate(todo) if k > culprit and results[i] is None]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(batch_job, range(0, len(cases), batch_size)))
    return [r if r is not None else "crash:no result" for r in results]


def is_failure(result: str) -> bool:
    return result.startswith(("other-exception", "crash", "harness-error"))


def write_reproducer(case: dict, bases: dict[str, str], out_dir: Path) -> Path:
    """The mutated bytes of a case, as a file engine.load() can be pointed at."""
    data = case_bytes(case, load_bases(bases))
    out_dir.mkdir(parents=True, exist_ok=True)
    import hashlib

    suffix = ".npz" if data[:4] == b"PK\x03\x04" else ".tflite"
    path = out_dir / f"case_{hashlib.sha1(data).hexdigest()[:12]}{suffix}"
    path.write_bytes(data)
    path.with_suffix(".json").write_text(json.dumps(case))
    return path


if __name__ == "__main__":
    worker_main(sys.argv[1])
