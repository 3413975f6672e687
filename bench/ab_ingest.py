"""A/B of ingestion across versions of the code, interleaved round by round, everything off.

Each version is a `src` folder (a `git worktree` of another commit); this checkout's venv runs it
with that folder first on PYTHONPATH. Besides POSTs/s (noisy on a shared machine) it prints the
CPU the server's ingest process spent per POST, which moves far less with the neighbours' load.

    git worktree add --detach /tmp/old 131ba35
    .venv/bin/python bench/ab_ingest.py --code old=/tmp/old/src --code HEAD= [--rounds 3] [--size 1]

One JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import ingest  # the bench's body maker, wrk runner and process helpers
from sgbridge.roles.pressure import cpu_seconds as process_cpu_seconds


def cpu_seconds(pid: int) -> float:
    used = process_cpu_seconds(pid)
    if used is None:
        raise RuntimeError(f"process {pid} is gone")
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", action="append", required=True, help="NAME=SRC_DIR (empty: this checkout)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    versions = dict(pair.split("=", 1) for pair in args.code)
    keys = ingest.generate_keypair()
    with tempfile.TemporaryDirectory(prefix="sgbridge-ab-") as tmp:
        folder = Path(tmp)
        count = int((12_000 if args.size == 1 else max(1, 120_000 // args.size)) * args.seconds)
        bodies = ingest.make_bodies(folder, args.size, count, keys.private_key_pem().encode())
        for round_ in range(args.rounds):
            for name, src in versions.items():
                if src:
                    os.environ["PYTHONPATH"] = src
                else:
                    os.environ.pop("PYTHONPATH", None)
                with ingest.bridge(keys.public_key_base64, folder, None, SGBRIDGE_WAREHOUSE__ENABLED="false") as (
                        url, proc):
                    roles = httpx.get(f"{url}/healthz").json().get("roles")  # older versions: one process
                    pid = int(roles["ingest"]["pid"]) if roles else proc.pid
                    before = cpu_seconds(pid)
                    result = ingest.run_wrk(url, bodies, args.seconds, 64 if args.size < 1000 else 16)
                    spent = cpu_seconds(pid) - before
                seconds = result["duration_us"] / 1e6
                print(json.dumps({"code": name, "round": round_, "size": args.size,
                                  "posts_per_s": result["requests"] / seconds,
                                  "cpu_us_per_post": spent / result["requests"] * 1e6,
                                  "p99_ms": result["p99_us"] / 1000}), flush=True)


if __name__ == "__main__":
    main()
