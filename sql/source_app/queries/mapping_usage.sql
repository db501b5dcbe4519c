-- Every source value that needs a QBO mapping, with how many records use it and a few examples:
-- tax rates (used by sales), service types / products (sales), payment methods (receipts),
-- worker-invoice concepts (worker invoices). Columns: kind, source_id, name, records, examples.
SELECT 'tax-rate' AS kind, t.id::text AS source_id, t.name,
       count(DISTINCT l.sale_id) AS records,
       (array_agg(DISTINCT l.sale_id::text) FILTER (WHERE l.sale_id IS NOT NULL))[1:5] AS examples
FROM app.tax_rates t
LEFT JOIN app.sale_lines l ON l.tax_rate_id = t.id
GROUP BY t.id, t.name
UNION ALL
SELECT 'item', p.id::text, p.name, count(DISTINCT l.sale_id),
       (array_agg(DISTINCT l.sale_id::text) FILTER (WHERE l.sale_id IS NOT NULL))[1:5]
FROM app.products p
LEFT JOIN app.sale_lines l ON l.product_id = p.id
GROUP BY p.id, p.name
UNION ALL
SELECT 'payment-method', m.id::text, m.name, count(DISTINCT r.id),
       (array_agg(DISTINCT r.id::text) FILTER (WHERE r.id IS NOT NULL))[1:5]
FROM app.payment_methods m
LEFT JOIN app.receipts r ON r.payment_method_id = m.id
GROUP BY m.id, m.name
UNION ALL
SELECT 'expense-concept', l.concept, l.concept, count(DISTINCT l.worker_invoice_id),
       (array_agg(DISTINCT l.worker_invoice_id::text))[1:5]
FROM app.worker_invoice_lines l
GROUP BY l.concept
ORDER BY 1, 3
