"""Atomic file writes: write a temporary file beside the target, then os.replace it into place.

A reader never sees a half-written file, and a crash or an exception leaves the target untouched
(the temporary file is removed). The temporary name keeps the target's suffix, so writers that pick
a format from the extension (np.savez, PIL, matplotlib) work unchanged.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# mkstemp creates 0600 files; give the result the permissions a plain open() would (0666 & ~umask)
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `target`.

    with atomic_path("model.npz") as tmp:
        np.savez(tmp, ...)
    """
    target = Path(target)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        plain_mode(tmp)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def plain_mode(path: str | os.PathLike) -> None:
    """Give a mkstemp file (0600) the permissions of a normally created one."""
    os.chmod(path, 0o666 & ~_UMASK)


def _fsync(path: Path) -> None:
    # flush the data before the rename makes it visible, so a power loss cannot leave an empty target
    with contextlib.suppress(OSError), open(path, "rb") as f:
        os.fsync(f.fileno())


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    write_bytes(target, text.encode(encoding))
