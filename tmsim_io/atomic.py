"""Write files whole or not at all: to a temporary file beside the target, then rename."""

from __future__ import annotations

import io
import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path


TEMPORARY = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp")
"""Name of a temporary file of atomic_output: .<name>.<pid>.<8 hex digits>.tmp."""


@contextmanager
def atomic_output(path):
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it is
    removed and `path` is left as it was. An OSError about the temporary file (a full disk)
    is raised again naming `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno is None or err.filename not in (None, tmp, str(tmp)):
            raise
        raise OSError(err.errno, f"{err.strerror}; nothing was written", str(path)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_hdf5(path):
    """Yield (h5py.File, check) writing an HDF5 file through atomic_output. A failed write
    (a full disk) is kept from HDF5, whose state it would corrupt (a failed flush leaves the
    file open and crashes the process at exit); check() raises it, as does the end of the
    block, as one OSError naming `path`. The h5py file is closed once, always cleanly."""
    import h5py

    with atomic_output(path) as tmp:
        with _KeptErrorFile(tmp, "r+") as raw:
            try:
                with h5py.File(raw, "w") as f:
                    yield f, raw.check
            except Exception:
                raw.check()  # a failed write explains the error
                raise
        raw.check()


class _KeptErrorFile(io.FileIO):
    """A raw file for h5py's file-object driver that keeps the first OSError of a write,
    truncate or close (and skips later writes) instead of raising it into HDF5."""

    error: OSError | None = None

    def _keep(self, operation, *args):
        if self.error is None:
            try:
                return operation(*args)
            except OSError as err:
                self.error = err
        return None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            written = self._keep(super().write, view[done:])
            if not written:
                break
            done += written
        return len(view)

    def truncate(self, size=None) -> int:
        self._keep(super().truncate, size)
        return self.tell() if size is None else size

    def close(self):
        try:
            super().close()
        except OSError as err:
            self.error = self.error or err

    def check(self):
        """Raise the kept OSError, if any."""
        if self.error is not None:
            raise self.error


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove the temporary files of atomic writes in `folder` (TEMPORARY) whose process is no
    longer running, as a killed run leaves them; returns the paths removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [path for path in folder.iterdir() if (match := TEMPORARY.fullmatch(path.name)) and path.is_file()
             and not _running(int(match.group(1)))]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _running(pid: int) -> bool:
    """Whether process `pid` runs (on POSIX; elsewhere assumed, as os.kill would end it)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True
