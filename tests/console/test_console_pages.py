"""The console's pages over a real journal: search (ids, email, user, message, time), the event page,
dead letters filtered and replayed. (The live tail streams: httpx's ASGI transport waits for a
response's end, so tests/console/test_browser.py covers it over a real socket.)"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import anyio
import pytest

from sgbridge.console.search_index import keys_of
from tests.console.helpers import add_user, form_token, login

pytestmark = pytest.mark.anyio
BASIC = "Basic " + base64.b64encode(b"in-key:").decode()


def _event(i: int, email: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"email": email or f"user{i}@example.com", "timestamp": 1_764_000_000 + i, "event": "delivered",
            "sg_event_id": f"ev-{i:05d}", "sg_message_id": f"msg{i % 3}.filter0001.x", **extra}


def _seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'href="/ui/events/(\d+)"', html)]


async def _indexed(app: Any) -> None:
    """Until the web role's search index has read the whole log."""
    with anyio.fail_after(10):
        while (await app.state.console.search.status())["behind"]:
            await anyio.sleep(0.05)


def test_the_keys_an_event_is_found_by() -> None:
    assert keys_of(b'{"email":"A@Example.com","sg_message_id":"abc.filter1","event":"open"}') == [
        ("email", "a@example.com"), ("message", "abc")]
    assert keys_of(b'{"type":"identify","userId":"u1","anonymousId":"a1","traits":{"email":"x@y.z"}}') == [
        ("email", "x@y.z"), ("user", "a1"), ("user", "u1")]
    assert keys_of(b'{"userId":true,"traits":["not", "an object"]}') == []
    assert keys_of(b"not json") == [] and keys_of(b"[1, 2]") == []


async def test_search_by_id_email_user_message_and_time(bridge_factory: Any, tmp_path: Any,
                                                        database_url: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[segment_inbound]\nwrite_keys = ["in-key"]\n')
    async with bridge_factory(database_url, config=str(config)) as h:
        add_user(h.app, "vic", "viewer")
        events = [_event(i) for i in range(30)] + [_event(100 + i, email="Shared@Example.com") for i in range(4)]
        assert (await h.post(events)).status_code == 200
        identify = await h.client.post("/v1/identify", headers={"Authorization": BASIC}, json={
            "userId": "user-42", "traits": {"email": "shared@example.com"}, "messageId": "ajs-1"})
        assert identify.status_code == 200
        await _indexed(h.app)
        await login(h.client, "vic")

        by_id = await h.client.get("/ui/events", params={"q": "ev-00007"})
        assert by_id.status_code == 200 and "ev-00007" in by_id.text and len(_seqs(by_id.text)) == 1
        by_message_id = await h.client.get("/ui/events", params={"q": "ajs-1"})
        assert "user-42" in by_message_id.text
        missing = await h.client.get("/ui/events", params={"q": "no-such-event"})
        assert "No stored event" in missing.text
        huge = await h.client.get("/ui/events", params={"q": "9" * 30})  # past 64 bits: no seq, no 500
        assert huge.status_code == 200 and "No stored event" in huge.text

        by_email = await h.client.get("/ui/events", params={"email": "shared@EXAMPLE.com"})
        found = _seqs(by_email.text)
        assert len(found) == 5 and found == sorted(found, reverse=True)  # 4 SendGrid events + the identify
        by_user = await h.client.get("/ui/events", params={"user": "user-42"})
        assert len(_seqs(by_user.text)) == 1 and "ajs-1" in by_user.text
        by_message = await h.client.get("/ui/events", params={"message": "msg1.filter0001.x"})
        assert len(_seqs(by_message.text)) == len([i for i in [*range(30), *range(100, 104)] if i % 3 == 1])

        since = await h.client.get("/ui/events", params={"since": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                                 time.gmtime(time.time() - 60))})
        assert len(_seqs(since.text)) == 35
        future = await h.client.get("/ui/events", params={"since": "2100-01-01T00:00"})
        assert _seqs(future.text) == []
        bad = await h.client.get("/ui/events", params={"since": "yesterday-ish"})
        assert "is not a time" in bad.text


@pytest.mark.parametrize("start, count", [("/ui/events", 30), ("/ui/events?email=shared%40example.com", 9),
                                          ("/ui/events?since=2000-01-01T00:00", 30)])
async def test_keyset_pages_cover_every_event_once(bridge_factory: Any, start: str, count: int) -> None:
    async with bridge_factory(SGBRIDGE_CONSOLE__PAGE_SIZE="4") as h:
        add_user(h.app, "vic", "viewer")
        events = [_event(i, email="shared@example.com" if i % 10 < 3 else None) for i in range(30)]
        assert (await h.post(events)).status_code == 200
        await _indexed(h.app)
        await login(h.client, "vic")
        seen: list[int] = []
        url: str | None = start
        while url:
            page = await h.client.get(url)
            seen += _seqs(page.text)
            more = re.search(r'class="more" href="([^"]+)"', page.text)
            url = more.group(1).replace("&amp;", "&") if more else None
        ordered = sorted(seen) if "since" in start else sorted(seen, reverse=True)
        assert seen == ordered and len(set(seen)) == len(seen) == count


async def test_the_event_page_shows_each_destinations_path_and_mapped_message(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        add_user(h.app, "vic", "viewer")
        assert (await h.post([_event(1)])).status_code == 200
        await h.wait_delivered(1)
        await login(h.client, "vic")
        seq = _seqs((await h.client.get("/ui/events", params={"q": "ev-00001"})).text)[0]
        with anyio.fail_after(10):
            while "delivered" not in (page := await h.client.get(f"/ui/events/{seq}")).text:
                await anyio.sleep(0.05)
        assert "Email Delivered" in page.text  # the track call made for Segment
        assert "/v1/batch" in page.text and "answer</b> 200" in page.text  # its attempt
        exchange = re.search(r'<pre class="exchange">(.*?)</pre>', page.text, re.S)
        assert exchange and "success" in exchange.group(1)  # the start of Segment's answer, as kept
        assert "&#34;sg_event_id&#34;:&#34;ev-00001&#34;" in page.text or '"sg_event_id":"ev-00001"' in page.text
        assert (await h.client.get("/ui/events/999999")).status_code == 404
        assert (await h.client.get("/ui/events/-1")).status_code == 404


async def test_dead_letters_filtered_and_replayed_one_selected_or_all_matching(bridge_factory: Any,
                                                                              database_url: str) -> None:
    async with bridge_factory(database_url) as h:
        add_user(h.app, "olga", "operator")
        big = [_event(i, huge="x" * 40_000) for i in range(3)]
        assert (await h.post(big)).status_code == 200
        journal = h.app.state.bridge.journal
        with anyio.fail_after(20):
            while len(journal.dead_letters()) < 3:
                await anyio.sleep(0.05)
        await login(h.client, "olga")
        page = await h.client.get("/ui/dead-letters", params={"reason": "byte limit"})
        ids = [int(i) for i in re.findall(r'name="id" value="(\d+)"', page.text)]
        assert len(ids) == 3
        assert re.findall(r'name="id" value="(\d+)"', (await h.client.get(
            "/ui/dead-letters", params={"reason": "no such reason"})).text) == []
        token = form_token(page.text)
        one = await h.client.post("/ui/dead-letters/replay", data={"csrf": token, "id": str(ids[0]),
                                                                   "scope": "selected"})
        assert one.status_code == 303 and "replayed=1" in one.headers["location"]
        statuses = dict(journal.run_sync(lambda c: c.execute("SELECT id, status FROM outcomes").fetchall()))
        assert statuses[ids[0]] in ("replay_requested", "rejected") and statuses[ids[1]] == "rejected"
        everything = await h.client.post("/ui/dead-letters/replay", data={
            "csrf": token, "scope": "matching", "reason": "byte limit", "destination": "segment"})
        assert "replayed=" in everything.headers["location"]
        assert int(re.search(r"replayed=(\d+)", everything.headers["location"]).group(1)) >= 2  # type: ignore[union-attr]


async def test_object_sync_runs_show_rows_per_collection_duration_and_errors(bridge_factory: Any) -> None:
    from sgbridge.journal.sync_runs import SyncRuns

    async with bridge_factory() as h:
        add_user(h.app, "vic", "viewer")
        runs = SyncRuns(h.app.state.bridge.journal)
        run_id = runs.start("default", "test-owner")
        assert run_id is not None
        runs.finish(run_id, "failed", [
            {"collection": "contacts", "status": "done", "rows": 1234, "seconds": 2.5},
            {"collection": "templates", "status": "failed", "rows": 0, "seconds": 0.1, "error": "HTTP 403: forbidden"}],
            "templates: HTTP 403")
        await login(h.client, "vic")
        page = await h.client.get("/ui/sync")
        assert page.status_code == 200
        row = re.search(rf"<tr><td>{run_id}</td>.*?</tr>", page.text, re.S)
        assert row, page.text[-2000:]
        assert "contacts: 1234 rows" in row.group(0) and "HTTP 403: forbidden" in row.group(0)
        assert "failed" in row.group(0)


async def test_the_overview_counts_what_went_in_and_out_with_retries_and_latency(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        add_user(h.app, "vic", "viewer")
        await h.fault({"status": 503, "count": 2})  # two failed requests, then delivered
        posted_in = time.time() // 60
        assert (await h.post([_event(i) for i in range(12)])).status_code == 200
        await h.wait_delivered(12)
        await login(h.client, "vic")
        with anyio.fail_after(10):
            while True:
                drawn = time.time() // 60
                page = (await h.client.get("/ui/")).text
                drawn = drawn if time.time() // 60 == drawn else None  # None: a minute ended during it
                row = re.search(r'<tr data-destination="segment">(.*?)</tr>', page, re.S)
                assert row, page[-1500:]
                cells = re.findall(r'<td class="num[^"]*">(.*?)</td>', row.group(1), re.S)
                if cells and cells[0].strip() == "12":
                    break
                await anyio.sleep(0.3)
        events, success, retries = (c.strip() for c in cells[:3])
        assert events == "12" and retries == "2"
        assert success == "33.3 %"  # 1 of 3 requests delivered
        latency = re.search(r'class="num latency">([\d.]+) / ([\d.]+) s', row.group(1))
        assert latency and 0 <= float(latency.group(1)) < 30
        source = re.search(r'<td><a href="/ui/events\?source=default">default</a></td>.*?</tr>', page, re.S)
        # Last minute, last hour: the POST's minute may have ended before the page was drawn.
        assert source
        last_minute, last_hour = re.findall(r'<td class="num">(\d+)</td>', source.group(0))[:2]
        assert last_hour == "12"
        assert last_minute == ("12" if drawn == posted_in else "0") or (drawn is None and last_minute in ("0", "12"))
