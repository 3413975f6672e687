"""sgbridge against the service built the way the vendors' docs suggest (../shared/peers), same run.

Both get the same pre-signed bodies of distinct events from wrk on this machine, and both send to
the same kind of Segment stand-in (the shipped emulator, at the lowest CPU priority). sgbridge runs
with its defaults (Segment, the warehouse); the peer is FastAPI + the `sendgrid` signature helper +
`segment-analytics-python`, in a venv of its own (made once under ~/.cache/sgbridge-bench-peer).

    .venv/bin/python bench/peer.py [--runs 2] [--seconds 8] [--sizes 1,1000]

Acknowledged events are wrk's 200s times the body size. Delivered: what the stand-in accepted once
both services had drained (up to 120 s). Lost: acknowledged but never delivered (at least; a POST
still in flight when wrk stops may be delivered without having been counted as acknowledged).
One JSON line per run, then a summary with sgbridge's ratio to the peer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import ingest

PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers"
PEER_VENV = Path.home() / ".cache" / "sgbridge-bench-peer"
PEER_PACKAGES = ["fastapi", "uvicorn", "httptools", "sendgrid", "segment-analytics-python"]


def peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not (PEER_VENV / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
        (PEER_VENV / ".installed").touch()
    return python


@contextmanager
def peer(public_key: str, segment_url: str) -> Iterator[str]:
    port = ingest._free_port()
    env = {**os.environ, "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key, "SEGMENT_WRITE_KEY": "bench",
           "SEGMENT_ENDPOINT": segment_url}
    proc = subprocess.Popen([str(peer_python()), "-m", "uvicorn", "docs_style_app:app", "--app-dir", str(PEERS),
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        ingest._wait(f"{url}/docs")
        yield url
    finally:
        proc.terminate()
        proc.wait(60)


def _accepted(segment_url: str) -> int:
    return int(httpx.get(f"{segment_url}/_emulator/stats").json()["accepted"])


def _drained(segment_url: str, expected: float, timeout: float = 120.0) -> int:
    """What the stand-in accepted once it has everything, or has received nothing new for 5 s."""
    deadline, last, still_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = _accepted(segment_url)
        if count >= expected:
            return count
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since > 5:
            return count
        time.sleep(0.2)
    return _accepted(segment_url)


def run(args: argparse.Namespace, folder: Path) -> None:
    keys = ingest.generate_keypair()
    summary: dict[str, dict[str, float]] = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        connections = 64 if size < 1000 else 16
        ceiling = {1: 12_000}.get(size, max(1, 120_000 // size))
        # Transactional events only: the peer answers 500 to a whole body with one Single Send
        # event (its millisecond timestamp is out of datetime's range), so with SendGrid's real mix
        # it would take no 1,000-event body at all.
        bodies = ingest.make_bodies(folder, size, int(ceiling * args.seconds), keys.private_key_pem().encode(),
                                    marketing_share=0.0)
        rows: dict[str, list[dict[str, float]]] = {"sgbridge": [], "peer": []}
        for r in range(args.runs):
            for who in ("sgbridge", "peer"):
                with ingest.segment_emulator(keep_messages=False) as seg:
                    service = (ingest.bridge(keys.public_key_base64, folder, seg) if who == "sgbridge"
                               else peer(keys.public_key_base64, seg))
                    with service as handle:
                        url = handle[0] if isinstance(handle, tuple) else handle
                        result = ingest.run_wrk(url, bodies, args.seconds, connections)
                        acked = result["requests"] * size
                        delivered = _drained(seg, acked)
                seconds = result["duration_us"] / 1e6
                row = {"who": who, "size": size, "run": r, "acked_events_per_s": acked / seconds,
                       "acked": acked, "delivered": delivered, "lost_at_least": max(0, acked - delivered),
                       "p99_ms": result["p99_us"] / 1000}
                print(json.dumps(row), flush=True)
                rows[who].append(row)
        for who, found in rows.items():
            summary[f"{who}_{size}"] = {k: statistics.median(x[k] for x in found)
                                        for k in ("acked_events_per_s", "lost_at_least", "p99_ms")}
        summary[f"ratio_{size}"] = {"acked_events_per_s": summary[f"sgbridge_{size}"]["acked_events_per_s"]
                                    / summary[f"peer_{size}"]["acked_events_per_s"]}
    print(json.dumps({"summary": summary, "runs": args.runs, "seconds": args.seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sizes", default="1,1000")
    args = parser.parse_args()
    if not (PEERS / "docs_style_app.py").exists():
        raise SystemExit(f"the peer is not at {PEERS} (../shared/peers beside the checkout)")
    with tempfile.TemporaryDirectory(prefix="sgbridge-peer-bench-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
