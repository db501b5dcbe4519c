-- Summary of real (non-echo) changes after a sequence number, for debounce decisions.
-- Params: :after. Echo rows (origin = 'sync') are not counted but do move last_seq.
SELECT
    count(*) FILTER (WHERE origin <> 'sync')    AS pending,
    coalesce(max(seq), :after)                  AS last_seq,
    min(at) FILTER (WHERE origin <> 'sync')     AS first_at,
    max(at) FILTER (WHERE origin <> 'sync')     AS last_at
FROM app.change_log
WHERE seq > :after
