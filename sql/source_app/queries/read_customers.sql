-- Canonical customers (one per contact). Params: :after, :limit, :read_all (bool), :ids (expanding).
-- display_name: organisation name, else the QBO display name for QBO-origin contacts, else
-- "Given Family". Billing contact: the organisation's flagged billing contact (lowest id), else
-- the contact itself. One QBO customer per organisation (R5): its lowest-id contact represents
-- it (has_sale: a sale of any of its contacts); its other contacts are read with represented_by
-- (that contact's id) and never pushed themselves. has_sale otherwise: at least one sale of the
-- contact (R4). updated_at outside years 1..9999 (e.g.
-- 'infinity') reads as NULL: Python cannot hold it, and it is never pushed.
SELECT
    c.id                                                  AS source_id,
    coalesce(
        nullif(o.name, ''),
        CASE WHEN c.origin = 'qbo' THEN nullif(c.qbo_display_name, '') END,
        nullif(trim(coalesce(c.given_name, '') || ' ' || coalesce(c.family_name, '')), ''),
        nullif(c.email, ''),
        'Contact ' || c.id
    )                                                     AS display_name,
    coalesce(o.name, c.qbo_company_name)                  AS company_name,
    c.given_name,
    c.family_name,
    c.email,
    c.phone,
    coalesce(nullif(trim(coalesce(b.given_name, '') || ' ' || coalesce(b.family_name, '')), ''),
             nullif(trim(coalesce(c.given_name, '') || ' ' || coalesce(c.family_name, '')), ''))
                                                          AS billing_name,
    coalesce(b.email, c.email)                            AS billing_email,
    c.address_line1, c.address_line2, c.city, c.region, c.postal_code, c.country,
    coalesce(sold.yes, false)                             AS has_sale,
    c.organisation_id,
    CASE WHEN r.id <> c.id THEN r.id END                  AS represented_by,
    c.origin,
    CASE WHEN c.updated_at BETWEEN TIMESTAMPTZ '0001-01-03 00:00:00+00'
         AND TIMESTAMPTZ '9999-12-29 00:00:00+00' THEN c.updated_at END AS updated_at
-- The page is taken first (LIMIT applied to the contacts alone), then joined: each page costs
-- its own rows, not the rest of the table.
FROM (
    SELECT p.* FROM app.contacts p
    WHERE p.id > :after AND (:read_all OR p.id IN :ids)
    ORDER BY p.id
    LIMIT :limit
) c
LEFT JOIN app.organisations o ON o.id = c.organisation_id
-- the organisation (index contacts(organisation_id, id)): the contact that stands for it
-- (lowest id) and its billing contact (lowest flagged id); none without an organisation
LEFT JOIN LATERAL (
    SELECT min(x.id) AS id, min(x.id) FILTER (WHERE x.is_billing_contact) AS billing_id
    FROM app.contacts x WHERE x.organisation_id = c.organisation_id
) r ON true
LEFT JOIN app.contacts b ON b.id = r.billing_id
-- has_sale: a sale of the organisation for the contact that stands for it, else of the contact
-- (index probes per row, LIMIT 1: never a pass over every sale per page). Each member's sale is
-- its own LIMIT 1 probe: a join there is planned as a pass over every sale per page when the
-- statistics are stale (after a bulk load: 500 ms a page of 500 at 100k sales instead of 10 ms)
LEFT JOIN LATERAL (
    SELECT true AS yes FROM app.contacts m
    CROSS JOIN LATERAL (SELECT 1 FROM app.sales s WHERE s.contact_id = m.id LIMIT 1) s
    WHERE r.id = c.id AND m.organisation_id = c.organisation_id
    UNION ALL
    SELECT true FROM app.sales s WHERE r.id IS DISTINCT FROM c.id AND s.contact_id = c.id
    LIMIT 1
) sold ON true
ORDER BY c.id
