"""Background loads yield the CPU to a busy ingest process, for a bounded time.

The ingest process's CPU share is read from /proc (roles/pressure.py): measured here on real
processes, one spinning and one asleep. The delivery worker's wait (``YieldTo``) is measured on a
real journal: while ``busy`` holds, nothing is claimed until the oldest waiting event reaches the
bound; when it does not hold, windows are claimed at once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from sgbridge.delivery.worker import DeliveryWorker, YieldTo
from sgbridge.journal import Journal
from sgbridge.model import InboundEvent, InboundRequest
from sgbridge.outcomes import Delivered
from sgbridge.roles.pressure import IngestPressure
from sgbridge.settings import DeliverySettings

pytestmark = pytest.mark.anyio


def _heartbeat(directory: Path, pid: int) -> None:
    (directory / "ingest.heartbeat").write_bytes(orjson.dumps({"pid": pid, "started_at": 0, "beat_at": time.time()}))


def _share_after(pressure: IngestPressure, seconds: float = 0.6) -> float | None:
    pressure.cpu_share()
    time.sleep(seconds)
    return pressure.cpu_share()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_the_ingest_processs_cpu_share_is_read_from_proc(tmp_path: Path) -> None:
    spinning = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    sleeping = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        _heartbeat(tmp_path, spinning.pid)
        busy = _share_after(IngestPressure(tmp_path))
        _heartbeat(tmp_path, sleeping.pid)
        idle = _share_after(IngestPressure(tmp_path))
    finally:
        for proc in (spinning, sleeping):
            proc.kill()
            proc.wait()
    assert busy is not None and busy > 0.4  # a shared 2-core machine gives a spinning process most of a core
    assert idle is not None and idle < 0.1
    # Nothing to go by: no runtime folder, no heartbeat, a process that is gone.
    assert IngestPressure(None).cpu_share() is None
    assert IngestPressure(tmp_path / "missing").cpu_share() is None
    _heartbeat(tmp_path, spinning.pid)  # killed above
    assert IngestPressure(tmp_path).cpu_share() is None


class _Recorder:
    name = "recorder"
    stream = 0

    def __init__(self) -> None:
        self.taken_at: list[float] = []

    def consumes(self, source: str) -> bool:
        return True

    def prepare(self, events: list[Any]) -> tuple[list[Any], list[Any]]:
        from sgbridge.destinations.warehouse import LoadBatch

        return [LoadBatch(list(events))], []

    def split(self, batch: Any) -> list[Any]:
        return [batch]

    async def send(self, batch: Any) -> Any:
        self.taken_at.append(time.time())
        return Delivered()


async def _store(journal: Journal, count: int, start: int = 0) -> float:
    received = time.time()
    events = [InboundEvent("default", "open", f"k{i}".encode().ljust(16, b"-"), f"f{i}".encode().ljust(16, b"-"),
                           orjson.dumps({"event": "open", "n": i})) for i in range(start, start + count)]
    await journal.append(InboundRequest("default", received, 100, events))
    return received


async def _first_load(journal: Journal, yield_to: YieldTo | None) -> tuple[float, float]:
    destination = _Recorder()
    worker = DeliveryWorker(journal, destination, DeliverySettings(concurrency=1, poll_seconds=0.05),
                            yield_to=yield_to)
    received = await _store(journal, 5)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(worker.run)
        with anyio.fail_after(20):
            while not destination.taken_at:
                await anyio.sleep(0.02)
        worker.stop()
    return received, destination.taken_at[0]


async def test_a_busy_ingest_delays_claims_up_to_the_bound(tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'busy.db'}")
    try:
        received, taken = await _first_load(journal, YieldTo(lambda: True, max_seconds=1.5, poll_seconds=0.05))
    finally:
        journal.close()
    assert 1.5 <= taken - received < 5.0


async def test_an_idle_ingest_delays_nothing(tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'idle.db'}")
    try:
        received, taken = await _first_load(journal, YieldTo(lambda: False, max_seconds=30.0))
    finally:
        journal.close()
    assert taken - received < 1.5


async def test_the_oldest_waiting_event_is_past_the_cursor_and_the_claims(tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'oldest.db'}")
    try:
        assert journal.oldest_waiting("dest", 0) is None
        first = await _store(journal, 3)
        assert journal.oldest_waiting("dest", 0) == pytest.approx(first, abs=0.01)
        window = await journal.claim_window("dest", "me", 3, 30, 0)
        assert window is not None and journal.oldest_waiting("dest", 0) is None  # all claimed
        second = await _store(journal, 2, start=3)
        assert journal.oldest_waiting("dest", 0) == pytest.approx(second, abs=0.01)
        assert journal.oldest_waiting("dest", 1) is None  # another stream: nothing of it waits
    finally:
        journal.close()


async def test_a_worker_stopped_while_it_yields_claims_nothing(tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'stopped.db'}")
    try:
        destination = _Recorder()
        worker = DeliveryWorker(journal, destination, DeliverySettings(concurrency=1, poll_seconds=0.05),
                                yield_to=YieldTo(lambda: True, max_seconds=30.0, poll_seconds=0.05))
        await _store(journal, 5)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(worker.run)
            await anyio.sleep(0.5)
            worker.stop()
        claims = journal.run_sync(lambda conn: conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0])
    finally:
        journal.close()
    assert destination.taken_at == [] and claims == 0
