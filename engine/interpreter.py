"""A drop-in for LiteRT's Python `Interpreter` (ai_edge_litert.interpreter / tf.lite.Interpreter).

Same constructor, method names and return structures, so a script written for LiteRT runs unchanged:

    it = engine.Interpreter(model_path="model.tflite", num_threads=2)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])

The numbers are those of TFLite's reference kernels, whatever op resolver is asked for, or, with
`numerics="tflm"`, those of TFLite Micro, or with `numerics="litert"` those of LiteRT's default
interpreter on x86 (XNNPACK + optimized builtin kernels: what the same script computed under LiteRT).
`numerics` is the one keyword LiteRT does not have (README, "Numerics profiles").
Differences from LiteRT, all on purpose:
- errors are engine errors (InputError, ModelFormatError, UnsupportedError), not ValueError/RuntimeError;
- resize_tensor_input changes the batch dimension only;
- get_tensor on an intermediate tensor raises unless experimental_preserve_all_tensors=True
  (LiteRT returns whatever its reused arena holds); with it, every tensor of the last invoke() is readable.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from .budget import BudgetError
from .errors import InputError, UnsupportedError
from .executor import Plan
from .formats.tflite import shape_signatures
from .model import Model, _kernel_lock, load
from .signature import SignatureRunner, signature_defs


def _shape_signatures(data: bytes | None) -> dict[int, tuple[int, ...]]:
    """shape_signature of subgraph 0's tensors (-1 marks a dynamic dimension), when the file stores one."""
    try:
        return shape_signatures(data) if data is not None else {}
    except Exception:  # noqa: BLE001 - the importer validated the file; signatures are cosmetic
        return {}


class Interpreter:
    """LiteRT's Interpreter API on the engine. Not thread-safe (neither is LiteRT's)."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        model_content: bytes | None = None,
        experimental_delegates=None,
        num_threads: int | None = None,
        experimental_op_resolver_type=None,
        experimental_preserve_all_tensors: bool = False,
        numerics: str = "reference",
        **_ignored,  # LiteRT's other experimental_* switches: no meaning here
    ):
        if model_path is None and model_content is None:
            raise InputError("`model_path` or `model_content` must be specified")
        if model_content is not None:
            data = bytes(model_content)
            model = load(data, numerics=numerics)
        else:
            model = load(model_path, numerics=numerics)
            try:
                data = Path(model_path).read_bytes()
            except OSError:
                data = None
        self._setup(model, _shape_signatures(data), num_threads, experimental_preserve_all_tensors)
        self._signature_defs = signature_defs(data)

    @classmethod
    def from_model(
        cls, model: Model, num_threads: int | None = None, experimental_preserve_all_tensors: bool = False
    ) -> Interpreter:
        """An Interpreter on an already loaded Model (no second load).

        Each Interpreter has buffers of its own; its invoke() is serialized with the Model's other
        runs (the Model's lock), so a Model stays shareable between threads through every way in.
        """
        it = cls.__new__(cls)
        it._setup(model, {}, num_threads, experimental_preserve_all_tensors)
        return it

    def _setup(self, model: Model, signatures: dict, num_threads: int | None, preserve_all: bool) -> None:
        if num_threads is not None:
            if not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
                raise InputError(f"num_threads should be >= 1, got {num_threads!r}")
            num_threads = min(int(num_threads), numba.config.NUMBA_NUM_THREADS)
        self._num_threads = num_threads
        self._preserve_all = bool(preserve_all)
        self._model = model
        g = model.graph
        self._graph = g
        self._signatures = signatures
        self._input_shapes = {i: (max(g.tensors[i].shape[0], 1), *g.tensors[i].shape[1:]) for i in g.inputs}
        self._plan: Plan | None = None
        self._inputs: dict[int, np.ndarray] = {}
        self._signature_defs: dict = {}

    # ---- allocation and resizing -------------------------------------------------------------
    def allocate_tensors(self) -> None:
        batches = {s[0] for s in self._input_shapes.values()}
        if len(batches) > 1:
            raise InputError(
                f"inputs resized to different batch sizes {sorted(batches)}; the engine needs one"
            )
        batch = batches.pop() if batches else 1
        if self._plan is not None and self._plan.batch == batch:
            return
        try:  # buffers of its own: a Model's runs (and other Interpreters) never overwrite its tensors
            self._plan = Plan(self._graph, batch, self._preserve_all, self._model.memory_budget)
        except BudgetError as e:
            raise InputError(f"a batch of {batch}: {e}") from None
        # inputs live in buffers of their own, so tensor(i)() can write into them as in LiteRT
        self._inputs = {
            i: np.zeros(self._input_shapes[i], self._graph.tensors[i].np_dtype) for i in self._graph.inputs
        }

    def resize_tensor_input(self, input_index: int, tensor_size, strict: bool = False) -> None:
        g = self._graph
        if input_index not in self._input_shapes:
            raise InputError(f"tensor {input_index} is not an input of the model (inputs: {g.inputs})")
        t = g.tensors[input_index]
        shape = tuple(int(d) for d in np.asarray(tensor_size).reshape(-1))
        stored = (1, *t.shape[1:])
        if len(shape) != len(stored) or shape[1:] != stored[1:]:
            raise UnsupportedError(
                f"input {t.describe()}: cannot resize to {list(shape)}; the engine changes the batch dimension only"
                f" (shape [N, {', '.join(map(str, stored[1:]))}])"
            )
        if shape[0] < 1:
            raise InputError(f"input {t.describe()}: batch must be >= 1, got {shape[0]}")
        sig = self._signatures.get(input_index)
        if strict and shape[0] != self._input_shapes[input_index][0] and (sig is None or sig[0] != -1):
            raise InputError(f"input {t.describe()}: strict resize of a dimension that is not dynamic (-1)")
        if shape != self._input_shapes[input_index]:
            self._input_shapes[input_index] = shape
            self._plan = None  # LiteRT also needs allocate_tensors() again after a resize

    # ---- details -----------------------------------------------------------------------------
    def _shape(self, i: int) -> tuple[int, ...]:
        if i in self._input_shapes:
            return self._input_shapes[i]
        if self._plan is not None and i in self._plan.shapes:
            return self._plan.shapes[i]
        return self._graph.tensors[i].shape

    def _details(self, i: int) -> dict:
        t = self._graph.tensors[i]
        shape = self._shape(i)
        sig = self._signatures.get(i, shape)
        per_tensor = t.scale.size == 1
        return {
            "name": t.name,
            "index": i,
            "shape": np.array(shape, np.int32),
            "shape_signature": np.array(sig, np.int32),
            "dtype": t.np_dtype.type,
            "quantization": (float(t.scale[0]), int(t.zero_point[0])) if per_tensor else (0.0, 0),
            "quantization_parameters": {
                "scales": t.scale.astype(np.float32),
                "zero_points": t.zero_point.astype(np.int32),
                "quantized_dimension": int(t.quant_axis),
                "block_size": 0,
            },
            "sparsity_parameters": {},
        }

    def get_input_details(self) -> list[dict]:
        return [self._details(i) for i in self._graph.inputs]

    def get_output_details(self) -> list[dict]:
        return [self._details(i) for i in self._graph.outputs]

    def get_tensor_details(self, subgraph_index: int = 0) -> list[dict]:
        self._check_subgraph(subgraph_index)
        return [self._details(i) for i in range(len(self._graph.tensors))]

    def _check_subgraph(self, subgraph_index: int) -> None:
        if subgraph_index != 0:
            raise UnsupportedError(f"subgraph {subgraph_index}: the engine runs subgraph 0 only")

    # ---- data --------------------------------------------------------------------------------
    def _check_index(self, i) -> int:
        n = len(self._graph.tensors)
        if not isinstance(i, (int, np.integer)) or not 0 <= int(i) < n:
            raise InputError(f"invalid tensor index {i!r} (the model has {n} tensors)")
        return int(i)

    def _require_allocated(self, what: str) -> Plan:
        if self._plan is None:
            raise InputError(f"{what}: tensors are not allocated; call allocate_tensors() first")
        return self._plan

    def set_tensor(self, tensor_index: int, value) -> None:
        i = self._check_index(tensor_index)
        self._require_allocated("set_tensor")
        t = self._graph.tensors[i]
        if i not in self._inputs:
            raise InputError(
                f"set_tensor: {t.describe()} is not an input of the model (inputs: {self._graph.inputs})"
            )
        value = np.asarray(value)
        buf = self._inputs[i]
        if value.dtype != buf.dtype:
            raise InputError(f"set_tensor: got {value.dtype} for input {t.describe()}, expected {buf.dtype}")
        if value.shape != buf.shape:
            raise InputError(
                f"set_tensor: got shape {list(value.shape)} for input {t.describe()}, expected {list(buf.shape)}"
                " (resize_tensor_input + allocate_tensors change the batch)"
            )
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise InputError(f"set_tensor: input {t.describe()} contains NaN or infinity")
        buf[...] = value

    def invoke(self) -> None:
        plan = self._require_allocated("invoke")
        previous = numba.get_num_threads()
        if self._num_threads is not None:
            numba.set_num_threads(self._num_threads)  # thread-local in numba: set around each run
        try:
            with self._model._lock, _kernel_lock():  # outputs land in the plan's buffers, read by get_tensor
                plan.run(dict(self._inputs))
        finally:
            if self._num_threads is not None:
                numba.set_num_threads(previous)

    def reset_all_variables(self) -> None:
        """LiteRT's reset of variable tensors (LSTM state). Engine runs are stateless: every invoke()
        already starts from reset state, where LiteRT would carry the state over from the last one."""
        self._require_allocated("reset_all_variables")

    def _view(self, i: int) -> np.ndarray:
        """The live array of tensor i (no copy), or an InputError saying why there is none."""
        t = self._graph.tensors[i]
        if t.is_const:
            return t.data
        plan = self._require_allocated("get_tensor")
        if i in self._inputs:
            return self._inputs[i]
        if i in plan.values:  # folded at plan time (SHAPE and constant sub-graphs)
            return plan.values[i]
        if i not in plan.buffers:
            raise InputError(f"get_tensor: {t.describe()} is not computed by the engine")
        if not (self._preserve_all or i in self._graph.outputs):
            raise InputError(
                f"get_tensor: {t.describe()} is an intermediate tensor whose memory is reused; create the "
                "Interpreter with experimental_preserve_all_tensors=True to read it"
            )
        return plan.buffers[i]

    def get_tensor(self, tensor_index: int, subgraph_index: int = 0) -> np.ndarray:
        """A copy of the tensor's current value (as LiteRT returns)."""
        self._check_subgraph(subgraph_index)
        return np.array(self._view(self._check_index(tensor_index)))

    def tensor(self, tensor_index: int):
        """A function returning a live view of the tensor (LiteRT semantics: do not hold it across invoke)."""
        i = self._check_index(tensor_index)
        return lambda: self._view(i)

    # ---- signatures ---------------------------------------------------------------------------
    def get_signature_list(self) -> dict[str, dict[str, list[str]]]:
        """{signature key: {"inputs": [names], "outputs": [names]}} (empty when the file has none)."""
        return {
            k: {"inputs": list(v["inputs"]), "outputs": list(v["outputs"])}
            for k, v in self._signature_defs.items()
        }

    def get_signature_runner(self, signature_key: str | None = None) -> SignatureRunner:
        """A callable running one SignatureDef: runner(name=array, ...) -> {output name: array}."""
        defs = self._signature_defs
        if signature_key is None:
            if len(defs) != 1:
                raise InputError(
                    f"signature_key is None and the model has {len(defs)} SignatureDefs: None is only allowed "
                    f"with exactly one ({', '.join(defs) or 'none here: use get_input_details() and set_tensor()'})"
                )
            signature_key = next(iter(defs))
        if signature_key not in defs:
            raise InputError(f"invalid signature_key {signature_key!r}; the model has {list(defs)}")
        return SignatureRunner(self, signature_key, defs[signature_key])

    # ---- engine extras -----------------------------------------------------------------------
    @property
    def model(self) -> Model:
        """The engine Model behind this interpreter."""
        return self._model


__all__ = ["Interpreter"]
