-- Promotions become reviewed content too: a claim is promoted either by an operator of this store (promoted_by) or
-- by an entry of content/evidence/promotions.toml, which names the operator who reviewed it (content_operator).
-- SQLite cannot relax a NOT NULL column in place, so the table is rebuilt (and the view over it recreated).
DROP VIEW public_claims;
CREATE TABLE claims_rebuilt (
    run_id           INTEGER PRIMARY KEY REFERENCES runs(id),
    level            TEXT NOT NULL CHECK (level IN ('declared-baseline', 'vkae-path', 'optimized-showcase', 'preview-smoke')),
    promoted_by      INTEGER REFERENCES operators(id),
    content_operator TEXT,
    promoted_at      TEXT NOT NULL,
    reason           TEXT NOT NULL,
    public_json      TEXT NOT NULL,
    retracted_at     TEXT,
    retracted_by     INTEGER REFERENCES operators(id),
    retract_reason   TEXT,
    CHECK ((retracted_at IS NULL) = (retracted_by IS NULL)),
    CHECK ((promoted_by IS NULL) <> (content_operator IS NULL))
);
INSERT INTO claims_rebuilt (run_id, level, promoted_by, promoted_at, reason, public_json, retracted_at, retracted_by, retract_reason)
SELECT run_id, level, promoted_by, promoted_at, reason, public_json, retracted_at, retracted_by, retract_reason FROM claims;
DROP TABLE claims;
ALTER TABLE claims_rebuilt RENAME TO claims;

-- A newer signed record of the same family, GPU, recipe and batch whose VKAE median is more than 2% below a
-- promoted claim's, found when that record is ingested. A claim is disputed while it has such a row; promoting it
-- again settles it (promotion deletes the claim's rows), and a retracted claim is not public at all.
CREATE TABLE claim_disputes (
    claim_run_id     INTEGER NOT NULL REFERENCES runs(id),
    run_id           INTEGER NOT NULL REFERENCES runs(id),
    claim_median     REAL NOT NULL,
    run_median       REAL NOT NULL,
    found_at         TEXT NOT NULL,
    PRIMARY KEY (claim_run_id, run_id)
);

CREATE VIEW public_claims AS
SELECT r.run_id         AS run_id,
       r.family         AS family,
       r.gpu_id         AS gpu_id,
       c.level          AS level,
       c.promoted_at    AS promoted_at,
       c.public_json    AS public_json,
       r.record_json    AS record_json,
       r.content_sha256 AS record_sha256,
       k.name           AS lane_key,
       k.public_key     AS lane_public_key,
       (SELECT json_group_array(json_object('run_id', dr.run_id, 'vkae_median', d.run_median,
                                            'claim_median', d.claim_median, 'found_at', d.found_at))
          FROM claim_disputes d JOIN runs dr ON dr.id = d.run_id
         WHERE d.claim_run_id = c.run_id) AS disputes_json
FROM claims c
JOIN runs r ON r.id = c.run_id
JOIN lane_keys k ON k.id = r.lane_key_id
WHERE c.retracted_at IS NULL;
