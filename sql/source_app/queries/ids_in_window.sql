-- Source ids of one dated entity whose date lies in the window :lo..:last (both days included;
-- a date-range backfill re-pushes exactly these). Params: :entity (catalogue name), :lo, :last.
-- invoices: sales.txn_date; payments: receipts.received_on; bills: worker_invoices.issued_on.
SELECT id::text AS source_id FROM app.sales
WHERE :entity = 'invoices' AND txn_date >= :lo AND txn_date <= :last
UNION ALL
SELECT id::text FROM app.receipts
WHERE :entity = 'payments' AND received_on >= :lo AND received_on <= :last
UNION ALL
SELECT id::text FROM app.worker_invoices
WHERE :entity = 'bills' AND issued_on >= :lo AND issued_on <= :last
