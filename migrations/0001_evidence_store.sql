-- VKAE evidence store, schema 1.
-- Invariants enforced here (not only in Rust): runs and the audit log are append-only; a claim references a stored
-- run; the public view exposes only claims that are currently promoted.

CREATE TABLE operators (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    password_hash TEXT NOT NULL,          -- argon2id PHC string
    created_at    TEXT NOT NULL
);

-- Bearer credentials. Only a SHA-256 of the token is stored; the token is shown once when issued.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('ingest', 'operator')),
    operator_id INTEGER REFERENCES operators(id),
    label       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CHECK ((kind = 'operator') = (operator_id IS NOT NULL))
);

-- Browser sessions of operators. Only a SHA-256 of the session token is stored.
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    operator_id  INTEGER NOT NULL REFERENCES operators(id),
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,        -- unix seconds
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX sessions_operator ON sessions(operator_id);

CREATE TABLE lane_keys (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    public_key TEXT NOT NULL,             -- base64 of the 32-byte Ed25519 public key
    created_at TEXT NOT NULL
);

-- One row per ingested record, stored whole. Never updated or deleted.
CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    run_id         TEXT NOT NULL UNIQUE,
    content_sha256 TEXT NOT NULL,         -- SHA-256 of the record's RFC 8785 canonical form, signature included
    record_json    TEXT NOT NULL,
    family         TEXT NOT NULL,
    repo           TEXT NOT NULL,
    gpu            TEXT NOT NULL,
    gpu_id         TEXT,                  -- catalog id when the GPU is in the catalog
    lane_key_id    INTEGER NOT NULL REFERENCES lane_keys(id),
    ingested_at    TEXT NOT NULL
);
CREATE INDEX runs_family_gpu ON runs(family, gpu_id);

CREATE TRIGGER runs_no_update BEFORE UPDATE ON runs
BEGIN SELECT RAISE(ABORT, 'runs are append-only'); END;
CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'runs are append-only'); END;

-- Lanes judged at ingest, with the reasons. 'dashboard-valid' is not here: it is the claim below.
CREATE TABLE lane_verdicts (
    run_id  INTEGER NOT NULL REFERENCES runs(id),
    lane    TEXT NOT NULL CHECK (lane IN ('artifact', 'benchmark', 'quality')),
    passed  INTEGER NOT NULL CHECK (passed IN (0, 1)),
    reasons TEXT NOT NULL,                -- JSON array of strings
    PRIMARY KEY (run_id, lane)
);
CREATE TRIGGER lane_verdicts_no_update BEFORE UPDATE ON lane_verdicts
BEGIN SELECT RAISE(ABORT, 'lane verdicts are append-only'); END;
CREATE TRIGGER lane_verdicts_no_delete BEFORE DELETE ON lane_verdicts
BEGIN SELECT RAISE(ABORT, 'lane verdicts are append-only'); END;

-- The current public state of a run: a row exists once promoted; retracted_at set when withdrawn.
-- public_json is the claim as the public API shows it, computed at promotion from the stored record.
CREATE TABLE claims (
    run_id       INTEGER PRIMARY KEY REFERENCES runs(id),
    level        TEXT NOT NULL CHECK (level IN ('declared-baseline', 'vkae-path', 'optimized-showcase', 'preview-smoke')),
    promoted_by  INTEGER NOT NULL REFERENCES operators(id),
    promoted_at  TEXT NOT NULL,
    reason       TEXT NOT NULL,
    public_json  TEXT NOT NULL,
    retracted_at TEXT,
    retracted_by INTEGER REFERENCES operators(id),
    retract_reason TEXT,
    CHECK ((retracted_at IS NULL) = (retracted_by IS NULL))
);

CREATE TABLE audit_log (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,               -- operator name, 'ingest-token:<id>' or 'cli'
    action   TEXT NOT NULL,
    run_id   TEXT,
    detail   TEXT NOT NULL                -- JSON object
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- The only thing the public code path reads about runs: promoted, not retracted, claim-shaped.
CREATE VIEW public_claims AS
SELECT r.run_id      AS run_id,
       r.family      AS family,
       r.gpu_id      AS gpu_id,
       c.level       AS level,
       c.promoted_at AS promoted_at,
       c.public_json AS public_json
FROM claims c JOIN runs r ON r.id = c.run_id
WHERE c.retracted_at IS NULL;

CREATE TABLE preview_requests (
    id           INTEGER PRIMARY KEY,
    received_at  TEXT NOT NULL,
    name         TEXT NOT NULL,
    email        TEXT NOT NULL,
    company      TEXT NOT NULL,
    service_path TEXT NOT NULL,
    model_family TEXT NOT NULL,
    gpu          TEXT NOT NULL,
    message      TEXT NOT NULL
);
