-- Records of one entity changed by the app (not the sync's own write-backs, R35) in the
-- transaction-id window [:lo, :hi), with the latest operation per record.
-- Params: :entity, :lo, :hi.
SELECT DISTINCT ON (row_id) row_id, op
FROM app.change_log
WHERE entity = :entity AND txid >= :lo AND txid < :hi AND origin <> 'sync'
ORDER BY row_id, seq DESC
