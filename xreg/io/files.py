"""Files a user keeps: never written over without ``force``, never left half-written."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from xreg.core.checks import XregInputError


_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}  # a filesystem without hard links


def _target(path: Path) -> Path:
    """Where a write lands: a symlink's target (its regular file), else the path itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


SYSTEM = ("/proc", "/sys", "/dev")  # kernel interfaces, never a place for a user's output


def check_writable(path: str | Path, *, force: bool = False) -> None:
    """Refuse, before anything runs: an empty path, a folder (or a path ending in a slash), a name longer
    than the filesystem takes, anything under /proc, /sys or /dev, a missing or read-only folder, an
    existing file without ``force``, and anything but a regular file (a device, a pipe or a socket is
    refused even with ``force``; a symlink is written through to its file with ``force``)."""
    text = os.fspath(path)
    if not text.strip():
        raise FileNotFoundError("an output path is empty; give a file path.")
    if text.endswith(("/", os.sep)):
        raise IsADirectoryError(f"'{text}' ends with a slash: it names a folder; give a file path.")
    path = Path(text)
    real = os.path.realpath(path)
    root = next((r for r in SYSTEM if real == r or real.startswith(r + "/")), None)
    if root is not None:
        raise PermissionError(f"'{text}' is under {root}: a kernel interface, not a place for an output file.")
    limit = _name_max(path.parent)
    if len(os.fsencode(path.name)) > limit:
        raise FileNotFoundError(f"the file name of '{text}' is {len(os.fsencode(path.name))} bytes; "
                                f"this filesystem takes at most {limit}.")  # fmt: skip
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
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"The folder of '{path}' is not writable.")


def check_outputs(outputs: dict[str, str | None], inputs: tuple = (), *, force: bool = False,
                  stdout: tuple[str, ...] = ("--json",)) -> None:  # fmt: skip
    """Every output of one command, before it runs: each :func:`check_writable`, no two naming one file,
    and none naming an input file (refused even with ``force``: what a user wrote is never replaced).
    ``outputs`` maps a flag to its path (None: not given; '-': standard output, for the flags in ``stdout``)."""
    seen: dict[str, str] = {}
    ins = {os.path.realpath(p): p for p in inputs if p and os.path.isfile(p)}
    for flag, out in outputs.items():
        if out == "-" and flag not in stdout:
            where = f"'-' (standard output) is for {' and '.join(stdout)} only" if stdout else "give a path"
            raise XregInputError(f"{flag} writes a file; {where}.")
        if out is None or out == "-":
            continue
        check_writable(out, force=force)
        real = os.path.realpath(out)
        if real in seen:
            raise FileExistsError(f"{seen[real]} and {flag} both name '{out}'; give each output its own file.")
        if real in ins:
            raise FileExistsError(f"{flag} '{out}' is the input file '{ins[real]}'; xreg never writes over an input, "
                                  "even with --force.")  # fmt: skip
        seen[real] = flag


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


_writing = [0]  # outputs being written now (their temporary files may exist): a signal must unwind, not exit at once


def writing() -> bool:
    """Whether an output is being written (:func:`xreg.cli.common.guarded` then lets a signal unwind, so the
    temporary files go; otherwise the program may exit at once)."""
    return _writing[0] > 0


@contextlib.contextmanager
def _being_written():
    _writing[0] += 1
    try:
        yield
    finally:
        _writing[0] -= 1


def write_atomic(path: str | Path, content: str | bytes, *, force: bool = False) -> None:
    """Write ``content`` to ``path`` through a temporary file, then a hard link (without ``force``: the
    final name is created exclusively, so a file that appeared meanwhile is never replaced) or a rename
    (with ``force``). Nothing half-written is ever visible, and the temporary file goes on any exception,
    an interrupt or a SIGTERM (:func:`xreg.cli.common.guarded` turns it into one).

    The temporary file is created with mode 0o666, so the process umask gives it the mode any new
    file gets (no umask is read or changed).
    """
    check_writable(path, force=force)
    given = str(path)
    try:
        with _being_written():
            _write(_target(Path(path)), content, force)  # through a symlink (with force) to its file: the link stays
    except OSError as exc:
        if exc.strerror is None or exc.errno == errno.EEXIST:
            raise
        raise OSError(exc.errno, exc.strerror, given) from None  # the user's path, never the temporary one


def write_all(outputs: list[tuple[str | Path, str | bytes]], *, force: bool = False) -> None:
    """Write every ``(path, content)``, or none: each content goes to a temporary file beside its path
    first, and only once all are written (a full disk, ``File too large``) are they moved to their names.
    On any failure every temporary file goes, and no output of this call is left (nothing half-done)."""
    with _being_written():
        _write_all(outputs, force)


def _write_all(outputs: list[tuple[str | Path, str | bytes]], force: bool) -> None:
    for path, _ in outputs:
        check_writable(path, force=force)
    staged: list[tuple[Path, Path, str]] = []
    done: list[Path] = []
    new = set()  # the names this call creates (an existing file --force replaces cannot come back)
    try:
        for path, content in outputs:
            target = _target(Path(path))
            if not os.path.lexists(target):
                new.add(target)
            try:
                staged.append((_stage(target, content), target, str(path)))
            except OSError as exc:
                if exc.strerror is None:
                    raise
                raise OSError(exc.errno, exc.strerror, str(path)) from None
        for tmp, target, given in staged:
            _commit(tmp, target, force)
            done.append(target)
    except BaseException:
        for tmp, _, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for target in done:
            if target in new and os.path.exists(target):
                os.unlink(target)
        raise


def _stage(path: Path, content: str | bytes) -> Path:
    tmp = path.parent / f".xreg-{secrets.token_hex(6)}.tmp"  # short: a name near the limit still gets one
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        data = content.encode("utf-8") if isinstance(content, str) else content
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def _write(path: Path, content: str | bytes, force: bool) -> None:
    _commit(_stage(path, content), path, force)


def _commit(tmp: Path, path: Path, force: bool) -> None:
    try:
        if force:
            os.replace(tmp, path)
        else:  # claim the name exclusively: of two writers racing for a new path, the second is refused
            try:
                try:
                    os.link(tmp, path)
                except OSError as exc:
                    if isinstance(exc, FileExistsError) or exc.errno not in _NO_LINKS:
                        raise
                    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # no hard links here:
                    try:
                        os.replace(tmp, path)  # claim the name with an empty file, then swap the content in
                    except BaseException:
                        os.unlink(path)  # the empty placeholder is ours
                        raise
            except FileExistsError:
                raise FileExistsError(f"'{path}' exists; pass --force to overwrite it.") from None
            if os.path.exists(tmp):
                os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
