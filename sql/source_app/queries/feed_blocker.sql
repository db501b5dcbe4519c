-- What holds the change feed back (status): the changes committed at or after the horizon
-- (feed_horizon.sql), which no run reads until the oldest transaction still open in this
-- database ends, and that transaction. Params: :horizon.
SELECT
    (SELECT count(*) FROM app.change_log WHERE txid >= :horizon) AS waiting,
    a.pid,
    a.xact_start,
    a.state
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT pid, xact_start, state FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
    ORDER BY xact_start LIMIT 1
) a ON true
