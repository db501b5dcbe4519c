-- Canonical bill headers (worker invoices). Params: :after, :limit, :read_all, :ids.
-- Dates outside years 1..9999 (year 10000, 'infinity', BC) cannot be read into Python: they are
-- selected as NULL with the raw text in <column>_invalid, and the quality rules hold the record
-- (R40). updated_at outside that range reads as NULL (it is never pushed).
SELECT id AS source_id, worker_id AS vendor_source_id, number AS doc_number,
       CASE WHEN issued_on BETWEEN DATE '0001-01-01' AND DATE '9999-12-31' THEN issued_on END
           AS txn_date,
       CASE WHEN NOT (issued_on BETWEEN DATE '0001-01-01' AND DATE '9999-12-31')
            THEN issued_on::text END AS txn_date_invalid,
       CASE WHEN due_on BETWEEN DATE '0001-01-01' AND DATE '9999-12-31' THEN due_on END
           AS due_date,
       CASE WHEN NOT (due_on BETWEEN DATE '0001-01-01' AND DATE '9999-12-31')
            THEN due_on::text END AS due_date_invalid,
       memo, total,
       CASE WHEN updated_at BETWEEN TIMESTAMPTZ '0001-01-03 00:00:00+00'
            AND TIMESTAMPTZ '9999-12-29 00:00:00+00' THEN updated_at END AS updated_at
FROM app.worker_invoices
WHERE id > :after AND (:read_all OR id IN :ids)
ORDER BY id
LIMIT :limit
