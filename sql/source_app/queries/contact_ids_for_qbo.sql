-- Source contact ids of QBO customers. Params: :realm_id, :qbo_ids (expanding).
SELECT qbo_id, id AS source_id FROM app.contacts WHERE qbo_realm_id = :realm_id AND qbo_id IN :qbo_ids
