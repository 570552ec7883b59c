"""Small private state files: written whole and atomically, durable, mode 0600; read bounded.

Used for what a daemon must not lose across a restart and nobody else may read: the MN's credentials file
(``ccache``), the router's AH sequence counters (``ah.SequenceStore``) and its MN sessions (keys).

A write goes to ``<path>.tmp<pid>`` (created 0600), is fsync'd, renamed over ``path`` and the directory is
fsync'd, so a crash leaves either the old file or the new one, never a torn one.  A read refuses files over
``max_octets`` and, with ``private=True``, files that group or others may read (they hold keys).

Imports only the standard library and ``fmipfast.errors`` (docs/conventions.md §9 for ``security/``).
"""

from __future__ import annotations

import os
import stat

from fmipfast.errors import FmipError

__all__ = ["StateFileError", "write_private", "read_private"]


class StateFileError(FmipError, ValueError):
    """A state file that cannot be used: its path and the problem."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically and durably, mode 0600.  Raises ``OSError``."""
    name = os.fspath(path)
    tmp = f"{name}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    try:
        try:
            os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)  # an old temporary file may have had another mode
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(os.path.dirname(os.path.abspath(name)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_private(path: str | os.PathLike[str], max_octets: int, *, private: bool = True) -> bytes | None:
    """The contents of ``path``, or None if it does not exist.  :class:`StateFileError` if it cannot be read,
    is larger than ``max_octets``, or (``private``) may be read by group or others."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            st = os.fstat(fh.fileno())
            if private and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise StateFileError(name, f"mode {stat.S_IMODE(st.st_mode):04o}: it holds keys and must not be "
                                           "readable by group or others (chmod 600)")
            raw = fh.read(max_octets + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(name, f"cannot read: {exc.strerror}") from None
    if len(raw) > max_octets:
        raise StateFileError(name, f"larger than {max_octets} octets")
    return raw
