-- Canonical vendors (workers / contractors). Params: :after, :limit, :read_all, :ids.
-- updated_at outside years 1..9999 (e.g. 'infinity') reads as NULL: Python cannot hold it.
SELECT id AS source_id,
       coalesce(nullif(trading_name, ''),
                nullif(trim(coalesce(given_name, '') || ' ' || coalesce(family_name, '')), ''),
                'Worker ' || id) AS display_name,
       given_name, family_name, email, phone, country,
       CASE WHEN updated_at BETWEEN TIMESTAMPTZ '0001-01-03 00:00:00+00'
            AND TIMESTAMPTZ '9999-12-29 00:00:00+00' THEN updated_at END AS updated_at
FROM app.workers
WHERE id > :after AND (:read_all OR id IN :ids)
ORDER BY id
LIMIT :limit
