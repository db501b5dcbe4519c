-- Canonical bill headers (worker invoices). Params: :after, :limit, :read_all, :ids.
SELECT id AS source_id, worker_id AS vendor_source_id, number AS doc_number,
       issued_on AS txn_date, due_on AS due_date, memo, total, updated_at
FROM app.worker_invoices
WHERE id > :after AND (:read_all OR id IN :ids)
ORDER BY id
LIMIT :limit
