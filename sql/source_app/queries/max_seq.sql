-- The newest change-log sequence number (0 when empty).
SELECT coalesce(max(seq), 0) AS max_seq FROM app.change_log
