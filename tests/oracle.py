"""The oracles: TFLite's reference kernels (LiteRT BUILTIN_REF), LiteRT's default interpreter (XNNPACK
delegate + optimized builtin kernels, OpResolverType.AUTO) and TFLite Micro, each in a subprocess.

    reference_run(model, inputs, preserve_all=True) -> dict(outputs=[arrays], tensors={name: array})
    reference_run_many(model, [inputs, ...], preserve_all=False) -> [dict(outputs=, tensors=), ...]
    litert_run(model, inputs, preserve_all=True) -> dict(outputs=, tensors=, delegated=[op indices])
    litert_run_many(model, [inputs, ...], preserve_all=False) -> [dict(outputs=, tensors=, delegated=), ...]
    micro_run(model, inputs) -> [arrays]
    micro_run_many(model, [inputs, ...], preserve_all=False) -> [dict(outputs=, tensors=), ...]

`model` is .tflite bytes or a path; `inputs` a list of arrays, one per model input (a single array is
taken as the only input). The reference interpreter resizes its inputs to the given shapes (batch > 1).
`tensors` holds every non-constant tensor of subgraph 0 the interpreter could return, keyed by name.
The default interpreter's `tensors` leave out those inside a delegated partition (the delegate computes
them in its own memory: LiteRT's copies are never written); a partition's inputs and outputs, and every
tensor of an op the delegate left to the builtin kernels, are there. With preserve_all, LiteRT gives every
delegated op a partition of its own (measured), so every tensor is readable then; compare the outputs of a
preserve_all=False run too, where the delegate sees whole partitions as it does in normal use. `delegated` lists the indices of
the model's ops the XNNPACK delegate took. A worker that dies on a signal (BUILTIN_REF can abort) raises OracleCrashed; a failure the interpreter
reports (e.g. a kernel refusing to prepare) raises OracleError with its message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("_oracle_worker.py")
PACKAGES = {"reference": "ai_edge_litert", "litert": "ai_edge_litert", "micro": "tflite_micro"}


def available(kind: str = "reference") -> bool:
    """Whether the package the oracle `kind` ("reference", "litert" or "micro") runs on is installed."""
    return importlib.util.find_spec(PACKAGES[kind]) is not None


def require(*kinds: str) -> None:
    """The one skip rule for every oracle use: under pytest, skip the calling test when an oracle it
    needs is not installed (every oracle call goes through here; tests that run an oracle another
    way, a script's --compare-litert in a subprocess, call it themselves)."""
    for kind in kinds or ("reference",):
        if not available(kind):
            import pytest

            pytest.skip(f"{PACKAGES[kind]} not installed: the {kind} oracle is unavailable")
TIMEOUT_S = float(os.environ.get("ORACLE_TIMEOUT_S", "900"))


class OracleError(RuntimeError):
    """The oracle interpreter refused the model or its inputs."""


class OracleCrashed(OracleError):
    """The oracle process died (a signal such as SIGABRT/SIGSEGV, or an unexpected exit)."""


def _model_bytes(model) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    return Path(model).read_bytes()


def _as_input_list(inputs) -> list[np.ndarray]:
    if isinstance(inputs, np.ndarray):
        return [inputs]
    return [np.ascontiguousarray(x) for x in inputs]


def _run(engine: str, model, runs: list, preserve_all: bool) -> list[dict]:
    require(engine)
    runs = [_as_input_list(r) for r in runs]
    with tempfile.TemporaryDirectory(prefix="oracle_") as tmp:
        d = Path(tmp)
        (d / "model.tflite").write_bytes(_model_bytes(model))
        arrays, keys = {}, []
        for r, inputs in enumerate(runs):
            keys.append([f"in_{r}_{k}" for k in range(len(inputs))])
            arrays.update(zip(keys[-1], inputs))
        np.savez(d / "inputs.npz", **arrays)
        (d / "job.json").write_text(
            json.dumps({"engine": engine, "preserve_all": preserve_all, "runs": keys})
        )
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        try:
            proc = subprocess.run(
                [sys.executable, str(WORKER), str(d)],
                check=False,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                env=env,
            )
        except subprocess.TimeoutExpired as e:
            raise OracleCrashed(f"{engine} oracle timed out after {TIMEOUT_S:.0f} s") from e
        log = (proc.stderr or "")[-3000:]
        if proc.returncode == 3 and (d / "error.json").exists():
            err = json.loads((d / "error.json").read_text())
            raise OracleError(f"{engine} oracle: {err['type']}: {err['message']}\n{log}")
        if proc.returncode != 0:
            how = f"exit status {proc.returncode}"
            if proc.returncode < 0:
                how = f"signal {signal.Signals(-proc.returncode).name}"
            raise OracleCrashed(f"{engine} oracle process died ({how})\n{log}")
        meta = json.loads((d / "result.json").read_text())
        names = meta["names"]
        delegated = meta.get("delegated") or [[] for _ in meta["n_outputs"]]
        results = []
        with np.load(d / "result.npz") as z:
            files = set(z.files)
            for r, n_out in enumerate(meta["n_outputs"]):
                outputs = [z[f"out_{r}_{k}"] for k in range(n_out)]
                tensors = {}
                for i, name in enumerate(names):
                    key = f"t_{r}_{i}"
                    if key in files:
                        tensors[name] = z[key]
                results.append({"outputs": outputs, "tensors": tensors, "delegated": delegated[r]})
    return results


def reference_run(model, inputs, preserve_all: bool = True) -> dict:
    """One run of LiteRT's reference kernels: dict(outputs=[...], tensors={name: array})."""
    return _run("reference", model, [inputs], preserve_all)[0]


def reference_run_many(model, runs: list, preserve_all: bool = False) -> list[dict]:
    """Several input sets through one interpreter in one subprocess (inputs may change batch size)."""
    return _run("reference", model, list(runs), preserve_all)


def litert_run(model, inputs, preserve_all: bool = True) -> dict:
    """One run of LiteRT's default interpreter (XNNPACK applied): dict(outputs=, tensors=, delegated=)."""
    return _run("litert", model, [inputs], preserve_all)[0]


def litert_run_many(model, runs: list, preserve_all: bool = False) -> list[dict]:
    """Several input sets through one default interpreter in one subprocess (inputs may change batch size)."""
    return _run("litert", model, list(runs), preserve_all)


def micro_run(model, inputs) -> list[np.ndarray]:
    """One run of the TFLite Micro interpreter (batch as stored in the model): the outputs."""
    return _run("micro", model, [inputs], False)[0]["outputs"]


def micro_run_many(model, runs: list, preserve_all: bool = False) -> list[dict]:
    """Several input sets through one TFLite Micro interpreter; tensors too when preserve_all."""
    return _run("micro", model, list(runs), preserve_all)
