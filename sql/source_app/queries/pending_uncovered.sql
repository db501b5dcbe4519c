-- Like pending_since.sql, but a change a push already read from the change feed (any route: the
-- sensor's run, `qbo-pipelines sync push`, a backfill) is not pending: a change is covered when
-- its transaction id lies below the company's feed position for its entity.
-- Only changes of the entities a push writes count (:entities): an edit of a tax rate or a
-- payment method (mapped, never written) starts no push.
-- Params: :after (sensor cursor, a seq), :positions (JSON text: entity -> feed horizon),
-- :entities (JSON text: the push entities).
-- last_seq: the newest seq after :after (covered, echo and other rows included), so a cursor
-- can move past work already done.
WITH c AS (
    SELECT seq, origin, at,
           coalesce(txid < (CAST(:positions AS jsonb) ->> entity)::bigint, false)
           OR NOT (CAST(:entities AS jsonb) ? entity) AS covered
    FROM app.change_log
    WHERE seq > :after
)
SELECT
    count(*) FILTER (WHERE origin <> 'sync' AND NOT covered)  AS pending,
    coalesce(max(seq), :after)                               AS last_seq,
    min(at) FILTER (WHERE origin <> 'sync' AND NOT covered)   AS first_at,
    max(at) FILTER (WHERE origin <> 'sync' AND NOT covered)   AS last_at
FROM c
