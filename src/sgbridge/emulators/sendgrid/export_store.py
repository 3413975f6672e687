"""Where contact export files live: one temporary folder per emulator state.

SendGrid hands out S3 links to gzip files; the emulator writes the same files to disk (a
million-contact export is far too big to keep in memory) and serves them itself. The folder is
made on the first export, deleted by ``clear()`` (reset, close) and, failing that, when the
state is garbage-collected or the interpreter exits (``weakref.finalize``: no leftovers in
``/tmp`` after a test run, and no ``ResourceWarning`` either).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

FOLDER_PREFIX = "sgbridge-sendgrid-exports-"


class ExportStore:
    def __init__(self) -> None:
        self._root: Path | None = None
        self._finalizer: weakref.finalize[..., ExportStore] | None = None
        self._folders: set[str] = set()

    def folder(self, export_id: str) -> Path:
        """The (new, empty) folder of one export's files."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
            self._finalizer = weakref.finalize(self, shutil.rmtree, self._root, True)
        path = self._root / export_id
        path.mkdir()
        self._folders.add(export_id)
        return path

    def holds(self, export_id: str) -> bool:
        return export_id in self._folders

    def file(self, export_id: str, name: str) -> Path | None:
        """The path of one file of an export, or ``None`` when it is not (or no longer) stored."""
        if self._root is None or export_id not in self._folders or "/" in name or name.startswith("."):
            return None
        path = self._root / export_id / name
        return path if path.is_file() else None

    def remove(self, export_id: str) -> None:
        if self._root is not None and export_id in self._folders:
            self._folders.discard(export_id)
            shutil.rmtree(self._root / export_id, ignore_errors=True)

    def clear(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs rmtree once and detaches
        self._root = None
        self._finalizer = None
        self._folders.clear()
