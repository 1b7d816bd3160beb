"""Run a .tflite model in LiteRT (reference kernels, or its default interpreter: XNNPACK + optimized
builtin kernels) or TFLite Micro; spawned by tests/oracle.py.

    python _oracle_worker.py JOB_DIR

JOB_DIR holds model.tflite, job.json (engine, preserve_all, runs: [[input keys]]) and inputs.npz. Writes
result.npz (out_<run>_<k>, t_<run>_<tensor index>) and result.json (tensor names; for the default
interpreter, "delegated": the model's op indices the XNNPACK delegate took), or error.json with the
message of a Python-level failure (exit 3). A crash inside the interpreter kills this process only.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np


def model_tensor_info(model_bytes: bytes) -> tuple[list[str], set[int]]:
    """Names of subgraph 0's tensors and the indices of the constant ones (buffer with data)."""
    import tflite

    model = tflite.Model.GetRootAs(model_bytes, 0)
    sg = model.Subgraphs(0)
    names, consts = [], set()
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        names.append(t.Name().decode("utf-8", "replace") if t.Name() else f"tensor_{i}")
        buf = model.Buffers(t.Buffer())
        if buf is not None and (buf.Offset() > 1 or (not buf.DataIsNone() and buf.DataLength() > 0)):
            consts.add(i)
    return names, consts


def _read(get):
    """A tensor's value, or None where the interpreter cannot return it (no data allocated)."""
    try:
        return get()
    except (ValueError, RuntimeError, TypeError, KeyError):
        return None


def delegate_partitions(it, n_ops: int) -> tuple[list[int], set[int]]:
    """The model's op indices that the delegate replaced, and the tensors inside its partitions (never
    written: the delegate computes them in its own memory). The interpreter lists the model's nodes,
    then one DELEGATE node per partition whose inputs and outputs bound it: a partition is the ops
    found walking back from its outputs to its inputs."""
    details = it._get_ops_details()
    producer = {}
    for d in details[:n_ops]:
        for t in d["outputs"]:
            producer[int(t)] = d
    replaced, inside = set(), set()
    for d in details[n_ops:]:
        if d["op_name"] != "DELEGATE":
            continue
        bound, outs = {int(t) for t in d["inputs"]}, {int(t) for t in d["outputs"]}
        stack = list(outs)
        while stack:
            t = stack.pop()
            op = producer.get(t)
            if t in bound or op is None or op["index"] in replaced:
                continue
            replaced.add(op["index"])
            inside.update(int(o) for o in op["outputs"] if int(o) not in outs)
            stack.extend(int(i) for i in op["inputs"] if i >= 0)
    return sorted(replaced), inside


def run_reference(
    model_bytes: bytes, runs: list[list[np.ndarray]], preserve_all: bool, default: bool = False
) -> list[dict]:
    """LiteRT's reference kernels, or (default=True) its default interpreter: the XNNPACK delegate
    applied (OpResolverType.AUTO), its optimized builtin kernels for the ops the delegate leaves."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(
        model_content=model_bytes,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.AUTO if default else OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=preserve_all,
    )
    in_details = it.get_input_details()
    out_details = it.get_output_details()
    names, consts = model_tensor_info(model_bytes) if preserve_all else ([], set())
    delegated, inside = [], set()
    shapes = None
    results = []
    for inputs in runs:
        if len(inputs) != len(in_details):
            raise ValueError(f"model has {len(in_details)} inputs, got {len(inputs)}")
        want = [tuple(x.shape) for x in inputs]
        if want != shapes:  # resize (batch > 1) only when the shapes change
            for d, shape in zip(in_details, want):
                if tuple(d["shape"]) != shape or shapes is not None:
                    it.resize_tensor_input(d["index"], list(shape), strict=False)
            it.allocate_tensors()
            shapes = want
            if default:  # the delegate re-partitions after a resize
                delegated, inside = delegate_partitions(it, _op_count(model_bytes))
        for d, x in zip(in_details, inputs):
            it.set_tensor(d["index"], x)
        it.reset_all_variables()  # every run starts from reset state (LSTM), like the stateless engine
        it.invoke()
        res = {"outputs": [it.get_tensor(d["index"]) for d in out_details], "tensors": {}}
        res["delegated"] = delegated
        if preserve_all:
            for i in range(len(names)):
                if i in consts or i in inside:
                    continue
                value = _read(lambda i=i: it.get_tensor(i))
                if value is not None:
                    res["tensors"][i] = value
        results.append(res)
    return results


def _op_count(model_bytes: bytes) -> int:
    import tflite

    return tflite.Model.GetRootAs(model_bytes, 0).Subgraphs(0).OperatorsLength()


def run_micro(model_bytes: bytes, runs: list[list[np.ndarray]], preserve_all: bool) -> list[dict]:
    import tflite
    from tflite_micro.python.tflite_micro import runtime

    model = tflite.Model.GetRootAs(model_bytes, 0)
    sg = model.Subgraphs(0)
    names, consts = model_tensor_info(model_bytes)
    # the default arena (10x the model size) is too small for models with few weights
    act_bytes = 0
    for i in range(sg.TensorsLength()):
        if i not in consts:
            shape = sg.Tensors(i).ShapeAsNumpy() if not sg.Tensors(i).ShapeIsNone() else np.ones(1)
            act_bytes += int(np.prod(shape, dtype=np.int64)) * 8
    # capped: TFLite Micro takes the size as a C int (YOLOv8n's bound, 2.2 GiB, overflowed it: SIGSEGV)
    arena = min(max(len(model_bytes) * 10, 4 * act_bytes + (1 << 20)), 1 << 30)
    config = (
        runtime.InterpreterConfig.kPreserveAllTensors
        if preserve_all
        else (runtime.InterpreterConfig.kAllocationRecording)
    )
    it = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena, intrepreter_config=config)
    n_out = sg.OutputsLength()
    results = []
    for inputs in runs:
        if len(inputs) != sg.InputsLength():
            raise ValueError(f"model has {sg.InputsLength()} inputs, got {len(inputs)}")
        for k, x in enumerate(inputs):
            it.set_input(x, k)
        it.invoke()
        res = {"outputs": [np.array(it.get_output(k), copy=True) for k in range(n_out)], "tensors": {}}
        if preserve_all:
            for i in range(len(names)):
                if i in consts:
                    continue
                value = _read(lambda i=i: it.GetTensor(i, 0))  # a dict: dtype, shape, tensor_data
                if value is not None:
                    res["tensors"][i] = np.array(value["tensor_data"], copy=True).reshape(value["shape"])
        results.append(res)
        it.reset()
    return results


def main() -> int:
    job_dir = Path(sys.argv[1])
    try:
        job = json.loads((job_dir / "job.json").read_text())
        model_bytes = (job_dir / "model.tflite").read_bytes()
        with np.load(job_dir / "inputs.npz") as z:
            runs = [[z[key] for key in keys] for keys in job["runs"]]
        kind, preserve_all = job["engine"], bool(job["preserve_all"])
        if kind == "micro":
            results = run_micro(model_bytes, runs, preserve_all)
        else:
            results = run_reference(model_bytes, runs, preserve_all, default=kind == "litert")
        arrays = {}
        names, _ = model_tensor_info(model_bytes) if job["preserve_all"] else ([], set())
        for r, res in enumerate(results):
            for k, out in enumerate(res["outputs"]):
                arrays[f"out_{r}_{k}"] = out
            for i, value in res["tensors"].items():
                arrays[f"t_{r}_{i}"] = value
        np.savez(job_dir / "result.npz", **arrays)
        meta = {"n_outputs": [len(res["outputs"]) for res in results], "names": names}
        meta["delegated"] = [res.get("delegated", []) for res in results]
        (job_dir / "result.json").write_text(json.dumps(meta))
    except Exception as e:  # noqa: BLE001 - every failure goes back to the parent with its message
        (job_dir / "error.json").write_text(
            json.dumps({"type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()})
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
