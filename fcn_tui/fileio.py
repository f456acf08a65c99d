"""Files written so that readers never see half of one, and never through a planted link.

- `atomic_write(path, fill)` / `atomic_write_text(path, text)`: a fresh temporary file beside
  `path` (exclusive create, unique name), filled, fsynced and renamed over `path`.
- `FolderHandle(path)`: a folder opened once without following a link (`O_DIRECTORY |
  O_NOFOLLOW`); the writes above, `open_append` and `overwrite_in_place` take one to write by name
  relative to it, so a folder swapped for a link meanwhile is never written through.
- `open_append(path)`: a descriptor appending to `path`, refusing a link or a file with another
  hard link; `overwrite_in_place(path, text)`: the last resort on a full disk.
- `read_file_text(path, limit)`: a regular file's UTF-8 text, `UnreadableFile` when it is not
  what the program writes (too large, not text, a FIFO or device).
- Every write error is a `RunWriteError` with one line (`write_error`): `disk full` when it is.

Imports only the standard library and `fcn_tui.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from fcn_tui.errors import RunWriteError, UnreadableFile

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # POSIX; elsewhere appends follow links as before
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)  # POSIX: opening a folder's handle fails on a file


def write_error(path: Path, err: OSError, doing: str = "cannot write") -> RunWriteError:
    """The one-line error for a failed write: it says `disk full` when it is, and names a planted link."""
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        reason = f"disk full: {reason}"
    elif err.errno == errno.ELOOP:
        reason = "a symbolic link is in the way; not followed"
    return RunWriteError(f"{path}: {doing} ({reason})")


def _file_mode() -> int:
    """0o666 less the umask: what `open()` would have given (mkstemp makes files 0o600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()  # read once at import, before any worker thread exists


def atomic_write(path: Path, fill: Callable[[BinaryIO], Any], folder: FolderHandle | None = None) -> None:
    """Write a file through `fill(binary file)` so that readers see the old or the new content.

    The temporary file is created fresh beside `path` (exclusive create, unique name: a link
    planted there is never followed) and renamed over `path`, which replaces a link at `path`
    instead of writing through it. With `folder` (a handle of `path`'s folder) the file is written
    through that handle.
    """
    path = Path(path)
    if folder is not None:
        _atomic_write_in(folder, path.name, fill)
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise write_error(path, err) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):  # POSIX; Windows has no mode bits to set
                os.fchmod(f.fileno(), FILE_MODE)
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise write_error(path, err) from None
        raise


def _atomic_write_in(folder: FolderHandle, name: str, fill: Callable[[BinaryIO], Any]) -> None:
    """`atomic_write` of `folder/name` through the folder's handle: the temp file is created and
    renamed relative to the handle, so a folder swapped for a link meanwhile is never followed."""
    path = folder.path / name
    for _ in range(100):  # a unique name, as mkstemp picks one
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW, 0o600, dir_fd=folder.fd)
            break
        except FileExistsError:
            continue
        except OSError as err:
            raise write_error(path, err) from None
    else:
        raise write_error(path, OSError(errno.EEXIST, "no free temporary file name"))
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name, src_dir_fd=folder.fd, dst_dir_fd=folder.fd)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder.fd)
        if isinstance(err, OSError):
            raise write_error(path, err) from None
        raise


class FolderHandle:
    """A run folder opened once, without following a link (`O_DIRECTORY | O_NOFOLLOW`): files are
    written by name relative to it, so a folder replaced by a link mid-run is never written through
    (the run's files stay in the folder that was opened, wherever it was moved)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        except OSError as err:
            raise write_error(self.path, err, "cannot open the run folder") from None
        weakref.finalize(self, close_quietly, self.fd)


def close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def open_append(path: Path, folder: FolderHandle | None = None) -> int:
    """A descriptor appending to `path` (created if missing), never through a link: a symbolic
    link is not followed (O_NOFOLLOW) and a file with another hard link (a name of a file elsewhere)
    is refused. With `folder`, `path`'s name is opened through the folder's handle."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | O_NOFOLLOW
    try:
        if folder is None:
            fd = os.open(path, flags, FILE_MODE)
        else:
            fd = os.open(path.name, flags, FILE_MODE, dir_fd=folder.fd)
    except OSError as err:
        raise write_error(path, err) from None
    if os.fstat(fd).st_nlink > 1:
        os.close(fd)
        raise RunWriteError(f"{path}: cannot write (a hard link is in the way; not appended through)")
    return fd


def atomic_write_text(path: Path, text: str, folder: FolderHandle | None = None) -> None:
    """Write a text file (UTF-8) atomically; see `atomic_write`."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data), folder)


def overwrite_in_place(path: Path, text: str, folder: FolderHandle | None = None) -> bool:
    """Last resort on a full disk: rewrite a file in its own blocks (no temp file, not atomic),
    never through a link; created if missing. True if it worked."""
    data = text.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | O_NOFOLLOW
    try:
        if folder is None:
            fd = os.open(path, flags, FILE_MODE)
        else:
            fd = os.open(Path(path).name, flags, FILE_MODE, dir_fd=folder.fd)
    except OSError:
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.ftruncate(fd, len(data))
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def read_file_text(path: Path, limit: int) -> str | None:
    """The text of a regular file (None if absent); UnreadableFile if it is not UTF-8 text we wrote."""
    try:
        if not path.is_file():  # a FIFO or device planted there would block or never end
            if path.exists() or path.is_symlink():
                raise UnreadableFile(f"{path.name} is not a regular file")
            return None
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise UnreadableFile(f"{path.name}: cannot read ({err.strerror or err})") from None
    if len(data) > limit:
        raise UnreadableFile(f"{path.name} is larger than {limit >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnreadableFile(f"{path.name} is not UTF-8 text (byte {err.start})") from None
