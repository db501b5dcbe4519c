-- Change-log entries after a sequence number, oldest first. Params: :after, :limit.
SELECT seq, entity, row_id, op, origin, at
FROM app.change_log
WHERE seq > :after
ORDER BY seq
LIMIT :limit
