"""Log lines: text for people (the default), or one JSON object a line (``log_format = "json"``).

Every line names the process's role(s). Lines about an event or a window carry what ties them to
the journal, as fields (JSON) or at the end (text): ``source`` and ``request_id`` (the journal's
id of the inbound request, shown on the console's event page), ``destination`` and ``seq`` (a log
sequence number or range). Normal operation is quiet at the default level (info): a line per
refused event, per retry, per window with rejections, per start and stop; nothing per request
(``log_level = "debug"`` adds one line per stored request).
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter

CONTEXT = ("source", "destination", "seq", "request_id")


class _Role(logging.Filter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        return True


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT if hasattr(record, name))
        return f"{line} [{context}]" if context else line


def configure(level: str, log_format: str, role: str) -> None:
    """Set up the root logger of this process (``role``: its roles, or ``supervisor``)."""
    handler = logging.StreamHandler()
    handler.addFilter(_Role(role))
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter("{asctime}{levelname}{role}{name}{message}", style="{",
                                  rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                                  timestamp=False)
    else:
        formatter = _Text("%(asctime)s %(levelname)s [%(role)s] %(name)s %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request's URL at INFO: one line per delivery, and the contacts export's
    # pre-signed download links, which grant access to the account's contacts until they expire.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def context(**fields: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the fields that are set."""
    return {k: v for k, v in fields.items() if v is not None}
