"""Files a user keeps: never written over without ``force``, never left half-written."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _target(path: Path) -> Path:
    """Where a write lands: a symlink's target (its regular file), else the path itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def check_writable(path: str | Path, *, force: bool = False) -> None:
    """Refuse to clobber an existing file without ``force``, to write into a missing folder, or to replace
    anything but a regular file (a device, a pipe or a socket is refused even with ``force``)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(f"'{path}' is a link to nothing; give a file path.")
    if path.exists() and not path.is_dir() and not _target(path).is_file():
        raise PermissionError(f"'{path}' is not a regular file (a device, pipe or socket): xreg writes only regular files.")
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder; give a file path.")
    if path.exists() and not force:
        raise FileExistsError(f"'{path}' exists; pass --force to overwrite it.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder of '{path}' does not exist.")


def write_atomic(path: str | Path, content: str | bytes, *, force: bool = False) -> None:
    """Write ``content`` to ``path`` through a temporary file and a rename; refuse to clobber without force.

    The temporary file is created with mode 0o666, so the process umask gives it the mode any new
    file gets (no umask is read or changed).
    """
    check_writable(path, force=force)
    path = _target(Path(path))  # through a symlink (with force) to its file: the link itself stays
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        data = content.encode("utf-8") if isinstance(content, str) else content
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
