-- Source ids of one dated entity whose date lies in the window [:lo, :hi) (a date-range
-- backfill re-pushes exactly these). Params: :entity (catalogue name), :lo, :hi (dates).
-- invoices: sales.txn_date; payments: receipts.received_on; bills: worker_invoices.issued_on.
SELECT id::text AS source_id FROM app.sales
WHERE :entity = 'invoices' AND txn_date >= :lo AND txn_date < :hi
UNION ALL
SELECT id::text FROM app.receipts
WHERE :entity = 'payments' AND received_on >= :lo AND received_on < :hi
UNION ALL
SELECT id::text FROM app.worker_invoices
WHERE :entity = 'bills' AND issued_on >= :lo AND issued_on < :hi
