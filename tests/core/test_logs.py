"""log_format = "json": one object a line with the role and what ties a line to the journal (the
request id the console's event page shows); quiet at the default level in normal operation."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sgbridge.logs import configure

pytestmark = pytest.mark.anyio


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def test_json_lines_carry_role_source_and_the_request_id(bridge_factory: Any, capfd: pytest.CaptureFixture[str],
                                                              restore_logging: None) -> None:
    async with bridge_factory() as h:
        configure("info", "json", "ingest")
        capfd.readouterr()
        good = {"email": "a@example.com", "timestamp": 1_764_000_000, "event": "delivered", "sg_event_id": "log-1"}
        quiet = await h.post([good])
        assert quiet.status_code == 200
        assert capfd.readouterr().err == ""  # normal operation: nothing at info
        answer = await h.post([{**good, "sg_event_id": "log-2"}, {"event": "delivered", "sg_event_id": [1, 2]}])
        assert answer.status_code == 200 and answer.json()["rejected"]
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.strip()]
    refused = [line for line in lines if "refused" in line["message"]]
    assert len(refused) == 1, lines
    line = refused[0]
    assert line["level"] == "WARNING" and line["role"] == "ingest" and line["source"] == "default"
    assert line["request_id"] == answer.json()["request_id"] and "time" in line and "logger" in line


def test_text_lines_put_the_context_at_the_end(capfd: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure("info", "text", "deliver")
    logging.getLogger("sgbridge.test").warning("segment: 3 events to retry", extra={"destination": "segment",
                                                                                   "seq": "10-12"})
    err = capfd.readouterr().err
    assert "WARNING [deliver] sgbridge.test segment: 3 events to retry [destination=segment seq=10-12]" in err


def test_log_format_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from sgbridge.settings import ConfigError, load_settings

    monkeypatch.setenv("SGBRIDGE_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="log_format"):
        load_settings(None)
