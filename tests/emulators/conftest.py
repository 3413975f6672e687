"""Fixtures shared by the emulator tests: the anyio backend and live uvicorn servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from sgbridge.emulators.segment import create_segment_emulator
from sgbridge.emulators.serving import serve_in_thread


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live_segment() -> Iterator[tuple[Starlette, str]]:
    """A Segment emulator on a real socket: needed where behaviour only exists on the wire."""
    app = create_segment_emulator()
    with serve_in_thread(app) as url:
        yield app, url


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()
