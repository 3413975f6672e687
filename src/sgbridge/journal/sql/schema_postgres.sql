-- sgbridge journal, PostgreSQL flavour. Kept in step with schema_sqlite.sql.
-- The event log is append-only, and delivery keeps a cursor per destination and materialises only
-- the exceptions (drops, rejections, replays) as rows, so the hot path writes one row per event.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('schema_version', '7') ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    event_count INTEGER NOT NULL,
    body_bytes INTEGER NOT NULL  -- the raw bodies are not kept: each event keeps its own bytes as sent
);

CREATE TABLE IF NOT EXISTS events (
    -- Appends hold an advisory lock until commit, so seq order is commit order (see dialect.py).
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id BIGINT NOT NULL,
    source TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    event_type TEXT NOT NULL,
    id_key BYTEA UNIQUE,
    fp_key BYTEA NOT NULL UNIQUE,
    body BYTEA NOT NULL,
    stream SMALLINT NOT NULL DEFAULT 0  -- journal/streams.py: 0 SendGrid, 1 Segment (schema version 5)
);
-- A destination's claims read only its stream's rows. seq increases, so inserts append to the
-- index's right edge.
CREATE INDEX IF NOT EXISTS events_stream ON events (stream, seq);

CREATE TABLE IF NOT EXISTS cursors (
    destination TEXT PRIMARY KEY,
    position BIGINT NOT NULL,
    stream SMALLINT  -- the stream the destination consumes, NULL until it claims (an older journal)
);

CREATE TABLE IF NOT EXISTS claims (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination TEXT NOT NULL,
    seq_lo BIGINT NOT NULL,
    seq_hi BIGINT NOT NULL,
    owner TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS claims_destination ON claims (destination, seq_lo);

CREATE TABLE IF NOT EXISTS outcomes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination TEXT NOT NULL,
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    status_code INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (destination, seq)
);
CREATE INDEX IF NOT EXISTS outcomes_status ON outcomes (status, destination);

CREATE TABLE IF NOT EXISTS attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    url TEXT NOT NULL,
    status_code INTEGER,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    event_count INTEGER NOT NULL,
    seq_lo BIGINT NOT NULL,
    seq_hi BIGINT NOT NULL,
    seqs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_range ON attempts (destination, seq_hi);

-- Emails sent by the sendEmail action, one row per Segment messageId: written before the request
-- goes out, so a crash or a timeout after sending is seen as "unknown" and the email is held for
-- review instead of being sent twice (schema version 3).
CREATE TABLE IF NOT EXISTS mail_sends (
    destination TEXT NOT NULL,
    message_key TEXT NOT NULL,
    state TEXT NOT NULL,  -- sending, sent, unsent, unknown
    sg_message_id TEXT,
    detail TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (destination, message_key)
);

-- Object syncs (SendGrid objects → warehouse): one row per run, its per-collection results as JSON.
-- A scheduled run has the slot it belongs to, and the unique index lets one process of many take a
-- slot (schema version 4).
CREATE TABLE IF NOT EXISTS sync_runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source TEXT NOT NULL,
    trigger TEXT NOT NULL,  -- schedule, manual
    slot BIGINT,  -- schedule: floor(start / interval), NULL for manual runs
    owner TEXT NOT NULL,
    status TEXT NOT NULL,  -- running, ok, partial, failed, interrupted
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    collections TEXT NOT NULL,
    error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_runs_slot ON sync_runs (source, slot);
CREATE INDEX IF NOT EXISTS sync_runs_started ON sync_runs (source, started_at);

-- Workflows (sgbridge/workflows): one row per run. A run that waits has its timer in due_at (the
-- runner claims due runs on the index below, on PostgreSQL with SKIP LOCKED, so each fires once across
-- processes), and a run that waits for an event is found by its key. active_key is set while a run is
-- active and its workflow allows one active run per key: the unique index enforces it. Its state
-- (the trigger event, step outputs, the branch it is on) is JSON in `context` (schema version 6).
CREATE TABLE IF NOT EXISTS wf_runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow TEXT NOT NULL,
    run_key TEXT NOT NULL,
    state TEXT NOT NULL,  -- ready, waiting, running, completed, exited, failed, cancelled, late
    position TEXT NOT NULL,  -- the step it is at: a path such as 2 or 3.then.0
    due_at DOUBLE PRECISION,  -- when the runner takes it up (a timer, a wait_for's timeout), NULL: no timer
    waiting_for TEXT,  -- the position of the wait_for step whose event it waits for, else NULL
    trigger_seq BIGINT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    owner TEXT,
    active_key TEXT UNIQUE,
    detail TEXT,  -- why it ended (exit_on condition, failure, cancel)
    context BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS wf_runs_due ON wf_runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS wf_runs_key ON wf_runs (run_key, workflow);
-- One run per trigger event and workflow: a window the intake applies twice (a crash before its
-- cursor moved) starts no second run.
CREATE UNIQUE INDEX IF NOT EXISTS wf_runs_trigger ON wf_runs (workflow, trigger_seq);
CREATE INDEX IF NOT EXISTS wf_runs_workflow ON wf_runs (workflow, state, id);

-- What each run did, step by step (sgbridge workflows show): an action's row is written before its
-- request goes out and completed after, so a run taken over after a crash does not do it again.
CREATE TABLE IF NOT EXISTS wf_steps (
    run_id BIGINT NOT NULL,
    position TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,  -- started, done, failed, skipped
    at DOUBLE PRECISION NOT NULL,
    output TEXT,
    PRIMARY KEY (run_id, position)
);

-- Events that workflow conditions count ("3 'Pricing Viewed' in 24 h"), per key and counter (the
-- counter's condition text), pruned past workflow_engine.history_seconds.
CREATE TABLE IF NOT EXISTS wf_history (
    run_key TEXT NOT NULL,
    counter TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (run_key, counter, seq)
);
CREATE INDEX IF NOT EXISTS wf_history_key ON wf_history (run_key, counter, at);
CREATE INDEX IF NOT EXISTS wf_history_at ON wf_history (at);

-- Profiles: traits per key, from identify calls and computed from SendGrid's events.
CREATE TABLE IF NOT EXISTS profiles (
    profile_key TEXT PRIMARY KEY,
    traits TEXT NOT NULL,
    seq BIGINT NOT NULL,  -- the last event applied: a window applied twice changes nothing
    updated_at DOUBLE PRECISION NOT NULL
);

-- Console users (sgbridge users add), with argon2 hashes, and their sessions: a session is valid
-- while its row exists (logout, a new password or a removal deletes it) (schema version 7).
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_name ON console_sessions (name);
