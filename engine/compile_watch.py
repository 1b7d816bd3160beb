"""Tell the user when the first run compiles the kernels, and time that apart from loading.

Numba compiles each kernel on its first call on a new machine (15-20 s for the SSD, once) and later
loads it from its on-disk cache (well under a second). Compilations are seen through Numba's event
API ("numba:compile" fires only on a cache miss), so the message appears only when it is true.
"""

from __future__ import annotations

import sys
import threading
import time

from numba.core import event as ev

MESSAGE = "compiling kernels (first run only)..."


class _Listener(ev.Listener):
    def __init__(self, watch: CompileWatch):
        self.watch = watch
        self.depth = 0
        self.started = 0.0

    def on_start(self, event) -> None:
        if self.depth == 0:
            self.started = time.perf_counter()
            self.watch._compiling()
        self.depth += 1
        self.watch.compiled += 1

    def on_end(self, event) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.watch.compile_s += time.perf_counter() - self.started


class CompileWatch:
    """with CompileWatch() as w: load and warm up -> w.load_s, w.compile_s, w.compiled (kernels compiled).

    On the first compilation a line goes to the stream; on a terminal it counts the seconds."""

    def __init__(self, stream=None, interval: float = 1.0):
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.compiled = 0
        self.compile_s = 0.0
        self.load_s = 0.0
        self._t0 = 0.0
        self._shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener = _Listener(self)

    def __enter__(self) -> CompileWatch:  # noqa: PYI034
        self._t0 = time.perf_counter()
        ev.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc) -> None:
        ev.unregister("numba:compile", self._listener)
        total = time.perf_counter() - self._t0
        self.load_s = max(0.0, total - self.compile_s)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self._write(f"{self._prefix()}done, {self.compiled} kernels in {self.compile_s:.1f} s\n")

    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def _prefix(self) -> str:
        return "\r" + MESSAGE + " " if self._tty() else MESSAGE + " "

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream must not break the run
            pass

    def _compiling(self) -> None:
        if self._shown:
            return
        self._shown = True
        self._write(MESSAGE + ("" if self._tty() else "\n"))
        if self._tty():
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()

    def _tick(self) -> None:
        start = time.perf_counter()
        while not self._stop.wait(self.interval):
            self._write(f"{self._prefix()}{time.perf_counter() - start:.0f} s")
