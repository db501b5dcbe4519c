-- Canonical sale headers. Params: :after, :limit, :read_all, :ids. Lines: read_sale_lines.sql.
-- billing_email (R18): the customer organisation's billing contact email, else the contact's.
SELECT
    s.id AS source_id, s.doc_number, s.contact_id AS customer_source_id, s.txn_date, s.due_date,
    s.currency, s.memo,
    coalesce(b.email, c.email) AS billing_email,
    s.send_requested, s.subtotal, s.discount_total, s.tax_total, s.total,
    s.detail_level, s.grouping_label AS grouping, s.origin, s.updated_at
FROM app.sales s
LEFT JOIN app.contacts c ON c.id = s.contact_id
LEFT JOIN app.contacts b ON b.id = (
    SELECT min(x.id) FROM app.contacts x
    WHERE x.organisation_id = c.organisation_id AND x.is_billing_contact
)
WHERE s.id > :after AND (:read_all OR s.id IN :ids)
ORDER BY s.id
LIMIT :limit
