-- QBO-origin receipts whose QBO payment is applied to no invoice any more (the bookkeeper
-- unapplied it): they pay no sale now, as in QBO (R20). Params: :realm_id, :qbo_ids (array).
UPDATE app.receipts SET sale_id = NULL
WHERE qbo_realm_id = :realm_id AND qbo_id = ANY(:qbo_ids) AND origin = 'qbo'
  AND sale_id IS NOT NULL
