{{ config(meta={'dagster': {'ref': {'name': 'ar_aging'}}}) }}
-- The A/R aging totals what the ledger's Accounts Receivable accounts hold on its
-- date, per company, to the cent: each open item is a receivable those accounts carry.
{{ aging_differs_from_ledger('ar_aging', 'Accounts Receivable') }}
