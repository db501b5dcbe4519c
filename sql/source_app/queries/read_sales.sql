-- Canonical sale headers. Params: :after, :limit, :read_all, :ids. Lines: read_sale_lines.sql.
-- customer_source_id: the contact's organisation's representative (its lowest-id contact: one QBO
-- customer per organisation, R5, as read_customers.sql), else the contact.
-- billing_email (R18): the customer organisation's billing contact email, else the contact's.
-- Dates outside years 1..9999 (year 10000, 'infinity', BC) cannot be read into Python: they are
-- selected as NULL with the raw text in <column>_invalid, and the quality rules hold the record
-- (R40). updated_at outside that range reads as NULL (it is never pushed).
SELECT
    s.id AS source_id, s.doc_number, coalesce(r.id, s.contact_id) AS customer_source_id,
    CASE WHEN s.txn_date BETWEEN DATE '0001-01-01' AND DATE '9999-12-31' THEN s.txn_date END
        AS txn_date,
    CASE WHEN NOT (s.txn_date BETWEEN DATE '0001-01-01' AND DATE '9999-12-31')
         THEN s.txn_date::text END AS txn_date_invalid,
    CASE WHEN s.due_date BETWEEN DATE '0001-01-01' AND DATE '9999-12-31' THEN s.due_date END
        AS due_date,
    CASE WHEN NOT (s.due_date BETWEEN DATE '0001-01-01' AND DATE '9999-12-31')
         THEN s.due_date::text END AS due_date_invalid,
    s.currency, s.memo,
    coalesce(b.email, c.email) AS billing_email,
    s.send_requested, s.subtotal, s.discount_total, s.tax_total, s.total,
    s.detail_level, s.grouping_label AS grouping, s.origin,
    CASE WHEN s.updated_at BETWEEN TIMESTAMPTZ '0001-01-03 00:00:00+00'
         AND TIMESTAMPTZ '9999-12-29 00:00:00+00' THEN s.updated_at END AS updated_at
-- The page is taken first (the primary key's order, LIMIT applied to the sales alone), then
-- joined: each page costs its own rows, not the rest of the table.
FROM (
    SELECT p.* FROM app.sales p
    WHERE p.id > :after AND (:read_all OR p.id IN :ids)
    ORDER BY p.id
    LIMIT :limit
) s
LEFT JOIN app.contacts c ON c.id = s.contact_id
-- the contact's organisation (index contacts(organisation_id, id)): the contact that stands for
-- it (lowest id) and its billing contact (lowest flagged id); none without an organisation
LEFT JOIN LATERAL (
    SELECT min(x.id) AS id, min(x.id) FILTER (WHERE x.is_billing_contact) AS billing_id
    FROM app.contacts x WHERE x.organisation_id = c.organisation_id
) r ON true
LEFT JOIN app.contacts b ON b.id = r.billing_id
ORDER BY s.id
