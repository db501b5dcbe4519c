-- The commit-safe horizon of the change log: every transaction OF THIS DATABASE with a txid
-- below it has ended (committed or rolled back), so no change-log row with txid < horizon can
-- still appear. Reading [previous horizon, this horizon) never skips a slow transaction that
-- took a lower seq and committed later, and never reads a row twice.
--
-- txids are cluster-wide, but only this database's transactions write its change log: the
-- horizon is the oldest transaction of the snapshot still running HERE (found by the lock
-- every transaction holds on its own id, and prepared transactions of this database), or the
-- snapshot's xmax when none is. A long transaction in another database on the same server
-- (the warehouse, Dagster's storage, another app) no longer holds the feed back. A
-- transaction that ends between the snapshot and the lock read is already visible to the
-- window's later read; one that starts after the snapshot gets a txid >= xmax. No params.
WITH snap AS (
    SELECT txid_current_snapshot() AS s
), running_here AS (
    SELECT l.transactionid::text::bigint AS xid32
    FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
      AND a.datname = current_database()
    UNION ALL
    SELECT transaction::text::bigint FROM pg_prepared_xacts WHERE database = current_database()
)
SELECT coalesce(
    (SELECT min(x) FROM snap, txid_snapshot_xip(snap.s) AS x
     WHERE x % 4294967296 IN (SELECT xid32 FROM running_here)),
    (SELECT txid_snapshot_xmax(s) FROM snap)
) AS horizon
