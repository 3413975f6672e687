"""Is an error worth another try as it is (transient), or may it be an event's fault (deterministic)?

The delivery engine never makes a dead letter of a transient fault: the network, a timeout, a
server out of memory or restarting, a lock. Those are retried with backoff until the destination
recovers or the events pass the maximum age. Any other error — a ``TypeError`` while serialising
an event, a value the warehouse refuses — may be caused by one event, and the worker searches for
it (delivery/search.py).

An error is transient when it, or any error in its chain (``__cause__``, ``__context__``, dlt's
``exception`` of a failed pipeline step), is of a transient type or says so in its message. dlt's
own "transient" label is not trusted: it called a NUL character PostgreSQL refuses transient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Errors of these types (or subclasses) are passing faults of the machine, the network or the server.
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (OSError, MemoryError, TimeoutError, ConnectionError)
# By name, so that no driver has to be imported here: DuckDB's, psycopg's and httpx's.
_TRANSIENT_NAMES = frozenset({
    "OutOfMemoryException", "InterruptException", "IOException", "ConnectionException",  # duckdb
    "OperationalError", "QueryCanceled", "AdminShutdown", "TransactionRollbackError",  # psycopg / DB-API
    "DeadlockDetected", "SerializationFailure", "LockNotAvailable", "TooManyConnections",
    "TransportError", "TimeoutException", "NetworkError", "RemoteProtocolError",  # httpx
})
# PostgreSQL files these under OperationalError, but they are about the data: the same event fails alike.
_DETERMINISTIC_NAMES = frozenset({"ProgramLimitExceeded", "StatementTooComplex", "TooManyColumns"})
# Looked for at the start of a message only: further on, messages quote the values refused.
_TRANSIENT_WORDS = (
    "out of memory", "timeout", "timed out", "canceling statement", "cancelled", "connection reset",
    "connection refused", "connection closed", "server closed the connection", "terminating connection",
    "could not connect", "broken pipe", "deadlock", "too many connections", "temporarily unavailable",
    "could not serialize access", "lock not available", "no space left", "disk full", "database is locked",
)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo and len(seen) < 16:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        inner = getattr(current, "exception", None)  # dlt's PipelineStepFailed
        todo.extend([current.__cause__, current.__context__, inner if isinstance(inner, BaseException) else None])
    return seen


# The last line of a traceback kept as text (dlt keeps a failed job's exception so): "Name: message".
_LAST_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+): (.*)$")


@dataclass(frozen=True, slots=True)
class _Seen:
    names: tuple[str, ...]  # the error's class and its bases
    message: str


def _seen(error: BaseException) -> list[_Seen]:
    """The chain's errors as (class names, message), and the error of a traceback kept as text."""
    out = []
    for current in _chain(error):
        text = str(current)
        out.append(_Seen(tuple(cls.__name__ for cls in type(current).__mro__), text))
        if "Traceback (most recent call last)" in text:
            for line in reversed(text.strip().splitlines()):
                match = _LAST_ERROR.match(line.strip())
                if match:
                    out.append(_Seen((match[1],), match[2]))
                    break
    return out


def is_transient(error: BaseException) -> bool:
    seen = _seen(error)
    if any(s.names[0] in _DETERMINISTIC_NAMES for s in seen):
        return False
    if any(isinstance(current, _TRANSIENT_TYPES) for current in _chain(error)):
        return True
    for s in seen:
        if any(name in _TRANSIENT_NAMES for name in s.names):
            return True
        message = s.message[:80].lower()
        if any(word in message for word in _TRANSIENT_WORDS):
            return True
    return False


def innermost(error: BaseException) -> tuple[str, str]:
    """(class name, message) of the innermost error: the cause, not its wrappers (``TypeError``,
    ``JSONDecodeError``, the database's error of a failed dlt job...)."""
    current = error
    for _ in range(16):
        inner = getattr(current, "exception", None)
        following = inner if isinstance(inner, BaseException) else current.__cause__ or current.__context__
        if following is None or following is current:
            break
        current = following
    last = _seen(current)[-1]
    return last.names[0], last.message


def kind_of(error: BaseException) -> str:
    """Two failures of one event are "the same" when their kinds are."""
    return innermost(error)[0]


def describe(error: BaseException, limit: int = 300) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text[:limit]}" if text else type(error).__name__


def cause(error: BaseException, limit: int = 300) -> str:
    """The innermost error, for a dead letter's reason."""
    name, message = innermost(error)
    return f"{name}: {message[:limit]}" if message else name
