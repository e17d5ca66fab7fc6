"""Atomic file writes: a temporary file beside the target, fsync, then ``os.replace``.

A crash or an exception at any point leaves either the previous file or the complete new one,
never a mix; the temporary file is removed on failure.

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as d:
...     atomic_write(Path(d) / "f.bin", b"abc")
...     (Path(d) / "f.bin").read_bytes()
b'abc'
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

_NEW_FILE_MODE = 0o644


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    A file that is replaced keeps its permission bits; a new one gets ``0o644``.
    """
    target = Path(path)
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else _NEW_FILE_MODE
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX; Windows has no directory handles to sync)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
