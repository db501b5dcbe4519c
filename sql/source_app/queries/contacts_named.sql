-- Source contacts (never QBO-origin) whose display name, blanks collapsed and lower-cased, is
-- one of :keys (a text array, lower-cased likewise), oldest first: what the pull matches a QBO
-- customer to before creating a contact (R5, R8; QBO takes names differing only in case or
-- blanks for one). The display name is read_customers.sql's for a source contact:
-- organisation name, else "Given Family", else email, else "Contact <id>".
SELECT c.id AS source_id, n.display_name
FROM app.contacts c
LEFT JOIN app.organisations o ON o.id = c.organisation_id
CROSS JOIN LATERAL (
    SELECT coalesce(
        nullif(o.name, ''),
        nullif(trim(coalesce(c.given_name, '') || ' ' || coalesce(c.family_name, '')), ''),
        nullif(c.email, ''),
        'Contact ' || c.id
    ) AS display_name
) n
WHERE c.origin = 'source'
    AND lower(btrim(regexp_replace(n.display_name, '\s+', ' ', 'g'))) = ANY(:keys)
ORDER BY c.id
