"""Numerics profiles: which TFLite runtime's arithmetic a prepared model reproduces, bit for bit.

TFLite's runtimes disagree in the last bit on some ops (README, "Numerics profiles"), so the engine
asks which one to equal. A profile is chosen once, at load (`engine.load(path, numerics="tflm")`),
and is a property of the prepared model: the Graph the model prepares carries its name
(Graph.numerics), each op's prepare() reads it with `profile_of(g)` and picks its arithmetic then,
and a run never branches on it. An op that does not look at it computes the reference arithmetic,
every profile's starting point.

Profiles: "reference" (LiteRT's reference kernels, the default), "tflm" (TFLite Micro; tflm.py) and
"litert" (LiteRT's default interpreter on x86: the ops its XNNPACK delegate takes, by litert.delegated(),
in XNNPACK's arithmetic, the others in LiteRT's optimized builtin kernels'; litert.py).

Adding a profile: one Profile in PROFILES (its name, the runtime it equals, and the rules by which
that runtime refuses a model), then, in the prepare() of each op whose kernel differs in that
runtime, a branch on profile_of(g) made once at prepare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InputError, UnsupportedError
from ..graph import Graph, Op
from . import litert, tflm

DEFAULT = "reference"


@dataclass(frozen=True)
class Profile:
    name: str
    runtime: str  # the implementation whose outputs this profile equals
    oracle: str  # how the tests run that implementation
    refuse: Callable[[Op, Graph], str | None] | None = None  # why the runtime cannot run op, or None


PROFILES = {
    "reference": Profile(
        "reference",
        "LiteRT's reference kernels",
        "ai_edge_litert Interpreter with OpResolverType.BUILTIN_REF",
    ),
    "tflm": Profile(
        "tflm",
        "TFLite Micro",
        "the tflite-micro package's interpreter (reference kernels, the microcontroller runtime)",
        tflm.refusal,
    ),
    "litert": Profile(
        "litert",
        "LiteRT's default interpreter (x86)",
        "ai_edge_litert Interpreter with OpResolverType.AUTO (XNNPACK applied)",
        litert.runtime_refusal,
    ),
}


def get(name: str) -> Profile:
    """The profile of that name, or an InputError listing the known ones."""
    if not isinstance(name, str) or name not in PROFILES:
        raise InputError(f"numerics={name!r} is not a profile (profiles: {', '.join(PROFILES)})")
    return PROFILES[name]


def profile_of(g: Graph) -> str:
    """The profile a graph is being prepared for (graphs built without one: the reference)."""
    return getattr(g, "numerics", DEFAULT)


def admit(op: Op, g: Graph) -> None:
    """Refuse, before its prepare(), an op that the profile's runtime cannot run (never a silent fallback)."""
    profile = PROFILES.get(profile_of(g))
    if profile is None:
        raise InputError(f"numerics={profile_of(g)!r} is not a profile (profiles: {', '.join(PROFILES)})")
    reason = profile.refuse(op, g) if profile.refuse else None
    if reason:
        raise UnsupportedError(
            f"{op.where()}: numerics={profile.name!r}: {profile.runtime} cannot run it: {reason}"
        )


def admit_output(op: Op, g: Graph, batch: int, index: int, shape: tuple) -> None:
    """Refuse an output whose computed shape differs from the one the model declares, under "tflm":
    TFLite Micro resizes no tensor, its kernels write into the declared shape (measured: a SUM whose
    keep_dims disagrees with its output, a TRANSPOSE of a resized input). Checked at the batch the
    model declares, the one TFLite Micro runs."""
    if profile_of(g) != "tflm" or any(tuple(g.tensors[i].shape[:1]) != (batch,) for i in g.inputs):
        return
    t = g.tensors[index]
    if tuple(shape) != tuple(t.shape):
        raise UnsupportedError(
            f"{op.where()}: numerics='tflm': output {t.describe()} computes to shape {list(shape)}; TFLite"
            " Micro does not resize tensors and would write the declared shape"
        )


__all__ = ["DEFAULT", "PROFILES", "Profile", "admit", "admit_output", "get", "profile_of"]
