-- Canonical vendors (workers / contractors). Params: :after, :limit, :read_all, :ids.
SELECT id AS source_id,
       coalesce(nullif(trading_name, ''),
                nullif(trim(coalesce(given_name, '') || ' ' || coalesce(family_name, '')), ''),
                'Worker ' || id) AS display_name,
       given_name, family_name, email, phone, country, updated_at
FROM app.workers
WHERE id > :after AND (:read_all OR id IN :ids)
ORDER BY id
LIMIT :limit
