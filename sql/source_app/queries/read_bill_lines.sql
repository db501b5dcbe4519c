-- Lines of the given worker invoices. Params: :ids (a list, sent as one array).
SELECT worker_invoice_id AS bill_id, line_no, concept, description, amount
FROM app.worker_invoice_lines
WHERE worker_invoice_id = ANY(:ids)
ORDER BY worker_invoice_id, line_no
