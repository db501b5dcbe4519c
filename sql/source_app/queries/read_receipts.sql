-- Canonical receipts. Params: :after, :limit, :read_all, :ids.
SELECT r.id AS source_id, r.sale_id AS sale_source_id,
       coalesce(r.contact_id, s.contact_id) AS customer_source_id,
       r.amount, r.received_on, r.payment_method_id AS payment_method_source_id, r.reference,
       r.origin, r.updated_at
FROM app.receipts r
LEFT JOIN app.sales s ON s.id = r.sale_id
WHERE r.id > :after AND (:read_all OR r.id IN :ids)
ORDER BY r.id
LIMIT :limit
