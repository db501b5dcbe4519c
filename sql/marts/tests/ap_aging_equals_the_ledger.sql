{{ config(meta={'dagster': {'ref': {'name': 'ap_aging'}}}) }}
-- The A/P aging totals what the ledger's Accounts Payable accounts hold on its
-- date, per company, to the cent: each open item is a payable those accounts carry.
{{ aging_differs_from_ledger('ap_aging', 'Accounts Payable') }}
