"""The memory budget of a model: what one plan may hold (activations, scratch, work arrays of the
kernels, folded constants, the model's constants), checked before anything is allocated.

Default: half the memory available when the model is loaded; `$ENGINE_MEMORY_BUDGET` or
`engine.load(..., memory_budget=)` set it (bytes, or a number with a K/M/G/T suffix).
"""

from __future__ import annotations

import os

from .errors import InputError, UnsupportedError

ENV = "ENGINE_MEMORY_BUDGET"
FRACTION = 0.5  # of the available memory, when nothing sets the budget
FALLBACK = 4 << 30  # where the available memory cannot be read
SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class BudgetError(UnsupportedError):
    """A plan would need more memory than the budget allows (an UnsupportedError at load)."""


def size_text(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def available_memory() -> int:
    """MemAvailable from /proc/meminfo, lowered to a cgroup's remaining limit when there is one."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = FALLBACK
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            avail = min(avail, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return avail


def parse(value, what: str) -> int:
    """A budget in bytes from an int or a string such as '512M' or '2G'."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in SUFFIXES else ""
        number = text[: len(text) - len(unit)].strip()
        try:
            n = int(float(number) * SUFFIXES[unit]) if len(number) < 32 else -1
        except (ValueError, OverflowError):
            n = -1
    if n <= 0:
        raise InputError(f"{what}: {value!r} is not a positive size (bytes, or with K/M/G/T)")
    return n


def resolve(budget=None) -> int:
    """The budget in bytes: the argument, else $ENGINE_MEMORY_BUDGET, else a fraction of what is free."""
    if budget is not None:
        return parse(budget, "memory_budget")
    if os.environ.get(ENV):
        return parse(os.environ[ENV], ENV)
    return int(available_memory() * FRACTION)


class Ledger:
    """Bytes a plan will hold, item by item; check() refuses before the allocation that overflows."""

    def __init__(self, budget: int | None, where: str):
        self.budget = budget
        self.where = where
        self.total = 0
        self.largest = (0, "")

    def add(self, nbytes: int, what: str) -> None:
        self.total += int(nbytes)
        if nbytes > self.largest[0]:
            self.largest = (int(nbytes), what)
        self.check()

    def check(self) -> None:
        if self.budget is not None and self.total > self.budget:
            size, what = self.largest
            raise BudgetError(
                f"{self.where} needs {size_text(self.total)}, over the memory budget of "
                f"{size_text(self.budget)}; the largest part: {what}, {size_text(size)} "
                f"(set ${ENV} or engine.load(..., memory_budget=) to change the budget)"
            )
