"""Follow one event: the request it came in, its stored form, and per destination its current
outcome and every attempt that carried it. Read-only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from sgbridge import outcomes as oc
from sgbridge.inbound.readable import load_for_display
from sgbridge.journal import streams
from sgbridge.journal.journal import Journal
from sgbridge.journal.workflow_runs import DEAD_LETTER_PREFIX

NOT_CONSUMED = "not_consumed"  # the destination does not read the event's stream


def find_seqs(journal: Journal, ref: str, sources: list[str]) -> list[int]:
    """An event by log seq (digits), by ``sg_event_id`` in any of the given sources, or by a Segment
    ``messageId`` (Segment-born events are keyed under ``segment``)."""
    if ref.isdigit():
        return [int(ref)] if int(ref) < 2**63 else []  # past 64 bits: no seq, and no query to make
    keys = [hashlib.blake2b(s.encode() + b"\0" + ref.encode(), digest_size=16).digest() for s in [*sources, "segment"]]

    def job(conn: Any) -> list[int]:
        found: list[int] = []
        for key in keys:
            row = conn.execute(journal.q("SELECT seq FROM events WHERE id_key = ?"), (key,)).fetchone()
            if row:
                found.append(int(row[0]))
        return found

    return journal.run_sync(job)


def trace(journal: Journal, seq: int, destinations: list[str],
          consumes: Mapping[str, Callable[[str], bool]] | None = None,
          workflows: Sequence[str] = ()) -> dict[str, Any] | None:
    """The event and, per destination, its outcome. A destination that does not read the event's
    stream (journal/streams.py: its cursor records the stream it reads) shows ``not_consumed``
    instead of the "delivered" its cursor would imply; ``consumes`` (source -> bool, by destination)
    says so for destinations that have not claimed anything yet. ``workflows``: the configured
    workflows, whose runs the event started are listed."""
    q = journal.q

    def job(conn: Any) -> dict[str, Any] | None:
        row = conn.execute(q("SELECT e.seq, e.source, e.received_at, e.event_type, e.body, e.request_id, r.body_bytes, "
                             "e.stream FROM events e LEFT JOIN requests r ON r.id = e.request_id WHERE e.seq = ?"),
                           (seq,)).fetchone()
        if row is None:
            return None
        source, stream = str(row[1]), int(row[7])
        event, unreadable = load_for_display(bytes(row[4]))
        result: dict[str, Any] = {
            "seq": int(row[0]), "source": source, "received_at": float(row[2]), "event_type": row[3],
            "event": event,
            "request": {"id": int(row[5]), "body_bytes": row[6]},
            "destinations": {},
        }
        if unreadable:  # stored by an sgbridge without today's checks: shown as text, with the reason
            result["event_unreadable"] = unreadable
        reads = {str(r[0]): r[1] for r in conn.execute("SELECT destination, stream FROM cursors")}
        for name in sorted(set(destinations) | set(reads)):
            takes = (consumes or {}).get(name)
            read = reads.get(name)
            if (takes is not None and not takes(source)) or (read is not None and int(read) != stream):
                result["destinations"][name] = {
                    "outcome": NOT_CONSUMED,
                    "reason": f"{name} does not consume events from source {source!r} "
                              f"(the {streams.NAMES[stream]} stream)"}
                continue
            result["destinations"][name] = _destination_view(conn, journal, name, seq)
        runs = _workflow_runs(conn, journal, seq, workflows)
        if runs:
            result["workflow_runs"] = runs
        return result

    return journal.run_sync(job)


def _workflow_runs(conn: Any, journal: Journal, seq: int, workflows: Sequence[str]) -> list[dict[str, Any]]:
    """The runs of these workflows this event started, with the dead letter of a failed one."""
    if not workflows:
        return []
    q = journal.q
    rows = conn.execute(q(
        "SELECT r.id, r.workflow, r.state, r.position, r.detail, o.id, o.status FROM wf_runs r "
        "LEFT JOIN outcomes o ON o.destination = ? || r.workflow AND o.seq = r.trigger_seq "
        f"WHERE r.workflow IN ({', '.join('?' * len(workflows))}) AND r.trigger_seq = ? ORDER BY r.id"),
        (DEAD_LETTER_PREFIX, *workflows, seq)).fetchall()
    return [{"run": int(r[0]), "workflow": r[1], "state": r[2], "position": r[3], "detail": r[4],
             **({"dead_letter": int(r[5]), "dead_letter_status": r[6]} if r[5] is not None else {})} for r in rows]


def _destination_view(conn: Any, journal: Journal, name: str, seq: int) -> dict[str, Any]:
    q = journal.q
    attempts = [
        {"started_at": float(a[0]), "status_code": a[1], "outcome": a[2], "detail": a[3], "url": a[4],
         "batch_events": int(a[5])}
        for a in conn.execute(q("SELECT started_at, status_code, outcome, detail, url, event_count, seqs "
                                "FROM attempts WHERE destination = ? AND seq_lo <= ? AND seq_hi >= ? "
                                "ORDER BY started_at"), (name, seq, seq)).fetchall()
        if seq in orjson.loads(a[6])
    ]
    view: dict[str, Any] = {"attempts": attempts}
    outcome = conn.execute(q("SELECT status, reason, status_code, id FROM outcomes WHERE destination = ? AND seq = ?"),
                           (name, seq)).fetchone()
    cursor = conn.execute(q("SELECT position FROM cursors WHERE destination = ?"), (name,)).fetchone()
    claim = conn.execute(q("SELECT attempts, last_error, next_attempt_at FROM claims WHERE destination = ? "
                           "AND done = 0 AND seq_lo <= ? AND seq_hi >= ?"), (name, seq, seq)).fetchone()
    if outcome:
        view.update(outcome=outcome[0], reason=outcome[1], status_code=outcome[2], outcome_id=int(outcome[3]))
    elif claim and claim[0]:
        view.update(outcome=oc.RETRYING, reason=claim[1], next_attempt_at=claim[2])
    elif cursor and int(cursor[0]) >= seq:
        view["outcome"] = oc.DELIVERED
    else:
        view["outcome"] = oc.PENDING
    return view
