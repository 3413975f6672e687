"""Which events must keep their order: inside a window (groups) and across windows (locks).

Events whose operations share an identity key (``email:…``, ``external_id:…``; for webhook
calls, the Segment user) form one group and run in order (``executor``). Across windows in
flight at once, ``WindowLocks`` makes a group wait only for the earlier windows that hold one
of its keys, so a slow import job or a failing contact in one window holds back only the
contacts it shares with later windows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sgbridge.actions.operations import PlannedEvent


def identity_keys(event: PlannedEvent) -> list[str]:
    keys = [f"{kind}:{value.lower() if kind == 'email' else value}"
            for op in event.operations for kind, value in op.identifiers().items()]
    if not keys and event.order_key:  # webhook calls: keep each Segment user's events in order
        keys = [f"user:{event.order_key}"]
    return keys


class Groups:
    """Union-find over the identity keys of the events."""

    def __init__(self, events: Sequence[PlannedEvent]) -> None:
        self.parent = list(range(len(events)))
        self.keys: list[list[str]] = [identity_keys(e) for e in events]
        owner: dict[str, int] = {}
        for index, keys in enumerate(self.keys):
            for key in keys:
                if key in owner:
                    self._union(owner[key], index)
                else:
                    owner[key] = index

    def _find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def of(self, i: int) -> int:
        return self._find(i)

    def keys_by_group(self) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        for index, keys in enumerate(self.keys):
            found.setdefault(self.of(index), set()).update(keys)
        return found


class WindowLocks:
    """Per-key order across windows: a window registers its keys in claim order, then waits
    (group by group) for the earlier windows that hold the same keys, until they are settled."""

    def __init__(self) -> None:
        self._holder: dict[str, asyncio.Future[None]] = {}
        self._own: dict[int, asyncio.Future[None]] = {}

    def register(self, window: int, events: Sequence[PlannedEvent]) -> dict[int, list[asyncio.Future[None]]]:
        """Take the window's keys (synchronously, in claim order); per event index, what it waits for."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._own[window] = mine
        groups = Groups(events)
        waits: dict[int, list[asyncio.Future[None]]] = {}
        for group, keys in groups.keys_by_group().items():
            earlier = {id(f): f for k in keys if (f := self._holder.get(k)) is not None and not f.done()}
            for key in keys:
                self._holder[key] = mine
            if earlier:
                waits[group] = list(earlier.values())
        return {i: waits[groups.of(i)] for i in range(len(events)) if groups.of(i) in waits}

    def release(self, window: int) -> None:
        """The window is settled: later windows waiting on its keys may go."""
        mine = self._own.pop(window, None)
        if mine is None:
            return
        if not mine.done():
            mine.set_result(None)
        for key in [k for k, f in self._holder.items() if f is mine]:
            del self._holder[key]
