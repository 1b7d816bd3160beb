"""LiteRT XNNPACK timed in a process of its own, on the bench's command (`bench.py --zoo`).

In one process, LiteRT's thread pool and the engine's OpenMP threads spin-wait beside each other
and each slows the other down (measured: YOLOv8n at 2 threads 34.8 ms an image in the bench's process
against 21.5-23.3 alone); separate processes are how either is used. The bench still interleaves:
it asks this process for one timing at a time, between the engine's own.

Protocol (pickles over the pipes): ("open", path, threads, xs) -> how LiteRT runs the batch;
("time", seconds) -> mean seconds per call over at least one call filling `seconds`; ("quit",).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Peer:
    """The bench's side: a child process running serve()."""

    def __init__(self):
        cmd = [sys.executable, "-c", "from benchmarks.peer import serve; serve()"]
        self._p = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def _ask(self, *message):
        pickle.dump(message, self._p.stdin)
        self._p.stdin.flush()
        answer = pickle.load(self._p.stdout)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def open(self, path: Path, threads: int, xs: list) -> str:
        """Load `path` at `threads` for the batch xs (run once: the warm-up); returns how it runs it."""
        return self._ask("open", str(path), threads, xs)

    def time(self, seconds: float) -> float:
        return self._ask("time", seconds)

    def close(self) -> None:
        try:
            pickle.dump(("quit",), self._p.stdin)
            self._p.stdin.close()
        except OSError:
            pass
        self._p.wait(timeout=60)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serve() -> None:
    from benchmarks.zoo import time_calls, xnnpack_batch

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # LiteRT's and our messages must not enter the pipe
    run, xs = None, None
    while True:
        message = pickle.load(stdin)
        try:
            if message[0] == "quit":
                return
            if message[0] == "open":
                _, path, threads, xs = message
                run, how = xnnpack_batch(Path(path), threads, xs)
                run(xs)
                answer = how
            else:
                answer = time_calls(run, xs, message[1], 1)
        except Exception as e:  # noqa: BLE001 (handed to the bench, which raises it)
            answer = RuntimeError(f"LiteRT peer: {type(e).__name__}: {e}")
        pickle.dump(answer, stdout)
        stdout.flush()
