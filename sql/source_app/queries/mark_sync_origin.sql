-- Mark the current transaction's writes as the sync's own (recorded as origin = 'sync' in
-- app.change_log, so they never come back as changes: R35). Transaction-local.
SELECT set_config('qbo_pipelines.origin', 'sync', true)
