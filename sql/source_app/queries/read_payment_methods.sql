-- Canonical payment methods. Params: :after, :limit, :read_all, :ids.
-- updated_at outside years 1..9999 (e.g. 'infinity') reads as NULL: Python cannot hold it.
SELECT id AS source_id, name,
CASE WHEN updated_at BETWEEN TIMESTAMPTZ '0001-01-03 00:00:00+00'
     AND TIMESTAMPTZ '9999-12-29 00:00:00+00' THEN updated_at END AS updated_at
FROM app.payment_methods
WHERE id > :after AND (:read_all OR id IN :ids)
ORDER BY id
LIMIT :limit
