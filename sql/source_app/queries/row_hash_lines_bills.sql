-- One hash per worker invoice of all its lines, for the ids in the range (:after, :last].
-- Params: :after, :last.
-- Lines in line_no order: unique per worker invoice (the table's UNIQUE key), so the index's order
-- is the aggregate's and no sort runs (the same hash as ordering by line_no, id did).
SELECT l.worker_invoice_id AS parent_id,
       md5(string_agg(l::text, ',' ORDER BY l.line_no)) AS lines_hash
FROM app.worker_invoice_lines l
WHERE l.worker_invoice_id > :after AND l.worker_invoice_id <= :last
GROUP BY l.worker_invoice_id
