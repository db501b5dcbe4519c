-- Every transaction's postings balance: debits = credits, to the cent.
select realm_id, txn_type, txn_qbo_id, sum(amount) as imbalance
from {{ ref('general_ledger') }}
group by 1, 2, 3
having sum(amount) <> 0
