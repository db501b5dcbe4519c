-- Canonical receipts. Params: :after, :limit, :read_all, :ids.
-- customer_source_id: the receipt's contact (else its sale's), or that contact's organisation's
-- representative (its lowest-id contact: one QBO customer per organisation, R5, as
-- read_sales.sql).
-- Dates outside years 1..9999 (year 10000, 'infinity', BC) cannot be read into Python: they are
-- selected as NULL with the raw text in <column>_invalid, and the quality rules hold the record
-- (R40). updated_at outside that range reads as NULL (it is never pushed).
SELECT r.id AS source_id, r.sale_id AS sale_source_id,
       coalesce(rep.id, r.contact_id, s.contact_id) AS customer_source_id,
       r.amount,
       CASE WHEN r.received_on BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'
            THEN r.received_on END AS received_on,
       CASE WHEN NOT (r.received_on BETWEEN DATE '0001-01-01' AND DATE '9999-12-31')
            THEN r.received_on::text END AS received_on_invalid,
       r.payment_method_id AS payment_method_source_id, r.reference,
       r.origin,
       CASE WHEN r.updated_at BETWEEN TIMESTAMPTZ '0001-01-03 00:00:00+00'
            AND TIMESTAMPTZ '9999-12-29 00:00:00+00' THEN r.updated_at END AS updated_at
-- The page is taken first (LIMIT applied to the receipts alone), then joined: each page costs
-- its own rows, not the rest of the table.
FROM (
    SELECT p.* FROM app.receipts p
    WHERE p.id > :after AND (:read_all OR p.id IN :ids)
    ORDER BY p.id
    LIMIT :limit
) r
LEFT JOIN app.sales s ON s.id = r.sale_id
LEFT JOIN app.contacts c ON c.id = coalesce(r.contact_id, s.contact_id)
-- the organisation's representative: its lowest-id contact (index contacts(organisation_id, id))
LEFT JOIN LATERAL (
    SELECT min(x.id) AS id FROM app.contacts x WHERE x.organisation_id = c.organisation_id
) rep ON true
ORDER BY r.id
