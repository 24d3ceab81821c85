-- Claims become verifiable by anyone: the public view also carries the signed record behind each promoted,
-- unretracted claim (exactly as stored: its RFC 8785 canonical form, signature included), its SHA-256, and the
-- lane key that signed it. Still the only object the public code path reads; unpromoted runs stay out of it.
DROP VIEW public_claims;
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
       k.public_key     AS lane_public_key
FROM claims c
JOIN runs r ON r.id = c.run_id
JOIN lane_keys k ON k.id = r.lane_key_id
WHERE c.retracted_at IS NULL;
