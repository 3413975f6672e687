"""Which errors the delivery engine retries as transient, taken from real DuckDB and PostgreSQL
errors: a transient one never makes a dead letter (delivery/faults.py)."""

from __future__ import annotations

import duckdb
import pytest

from sgbridge.delivery.faults import is_transient, kind_of
from tests.conftest import postgres_database


def _raised(fn) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("nothing raised")


def test_duckdb_out_of_memory_is_transient_and_a_conversion_error_is_not() -> None:
    conn = duckdb.connect(config={"memory_limit": "2MB", "threads": 1})
    oom = _raised(lambda: conn.execute("SELECT list(range) FROM range(10000000)").fetchall())
    refused = _raised(lambda: conn.execute("SELECT CAST('abc' AS INTEGER)").fetchall())
    wrapped = RuntimeError("load failed")
    wrapped.__cause__ = oom
    assert is_transient(oom) and is_transient(wrapped)
    assert not is_transient(refused)
    assert kind_of(wrapped) == type(oom).__name__


def test_a_traceback_kept_as_text_is_read_for_its_error() -> None:
    """dlt keeps a failed job's exception as its traceback text."""
    kept = RuntimeError('Job with `job_id=activity.1.csv.gz` had 1 retries. Exception for the last retry was: '
                        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
                        'psycopg2.errors.QueryCanceled: canceling statement due to statement timeout\n')
    data = RuntimeError("Job failed: Traceback (most recent call last):\n  File \"x.py\"\n"
                        "psycopg2.errors.NumericValueOutOfRange: smallint out of range\n")
    assert is_transient(kept) and kind_of(kept) == "QueryCanceled"
    assert not is_transient(data) and kind_of(data) == "NumericValueOutOfRange"
    assert not is_transient(TypeError("Recursion limit reached"))
    assert is_transient(ConnectionResetError("connection reset by peer"))


@pytest.mark.postgres
def test_postgres_statement_timeout_is_transient_and_a_raised_refusal_is_not() -> None:
    import psycopg

    for url in postgres_database():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '50ms'")
            timeout = _raised(lambda: conn.execute("SELECT pg_sleep(1)"))
            refused = _raised(lambda: conn.execute("DO $$ BEGIN RAISE EXCEPTION 'row refused'; END $$"))
            out_of_range = _raised(lambda: conn.execute("SELECT 100000::smallint"))
    assert is_transient(timeout)
    assert not is_transient(refused) and not is_transient(out_of_range)
