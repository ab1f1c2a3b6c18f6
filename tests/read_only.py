"""Test helper: run a command with a directory really read-only, by the first way this machine allows.

1. a read-only bind mount of the directory in a private mount namespace (`unshare -m`, or `unshare -rm`
   as an unprivileged user with user namespaces): writes fail with EROFS, for root too;
2. as a non-root user: the directory and its files chmod'ed read-only (EACCES).
Root ignores permission bits, so root without mount namespaces has no honest way, and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_MOUNT = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'


def _namespace(directory: Path) -> list[str] | None:
    if not shutil.which("unshare"):
        return None
    probe = directory / ".read-only-probe"
    for unshare in (["unshare", "-m"], ["unshare", "-r", "-m"]):
        prefix = [*unshare, "sh", "-c", _MOUNT, "sh", str(directory)]
        try:
            result = subprocess.run([*prefix, "touch", str(probe)], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if result.returncode != 0 and "Read-only file system" in result.stderr and not probe.exists():
            return prefix
    return None


@contextmanager
def read_only(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """(how, command prefix): commands run under the prefix see `directory` read-only, during the block."""
    prefix = _namespace(directory)
    if prefix is not None:
        yield "read-only bind mount (EROFS)", prefix
        return
    if os.geteuid() == 0:
        raise AssertionError("no way to make a directory read-only for root here: unshare -m (CAP_SYS_ADMIN) "
                             "or user namespaces are needed")
    modes = {path: path.stat().st_mode for path in [directory, *directory.iterdir()]}
    try:
        for path in modes:
            path.chmod(0o500 if path.is_dir() else 0o400)
        yield "chmod'ed read-only, not root (EACCES)", []
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
