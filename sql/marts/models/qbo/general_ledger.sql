-- Double-entry postings of every QBO transaction (accrual basis), posted the way QBO posts them
-- (qbo_pipelines/sandbox/ledger.py mirrors QBO): one row per (transaction, posting), debits
-- positive. Deleted transactions post nothing; voided ones (zero amounts) post nothing.
-- Each posting names its account directly or by role (the company's default A/R, A/P,
-- Undeposited Funds, Sales Tax Payable, income or expense account: see marts.accounts).
{%- set sales_types = [('Invoice', 'invoices', 'invoice_lines', 1),
                       ('SalesReceipt', 'sales_receipts', 'sales_receipt_lines', 1),
                       ('CreditMemo', 'credit_memos', 'credit_memo_lines', -1),
                       ('RefundReceipt', 'refund_receipts', 'refund_receipt_lines', -1)] %}
{%- set expense_types = [('Bill', 'bills', 'bill_lines', 1),
                         ('VendorCredit', 'vendor_credits', 'vendor_credit_lines', -1),
                         ('Purchase', 'purchases', 'purchase_lines', 1)] %}
with items as (
    select realm_id, qbo_id, data from {{ source('raw_qbo', 'items') }} where not deleted
),

sales as (
    {%- for entity, table, lines, sign in sales_types %}
    {% if not loop.first %}union all{% endif %}
    select realm_id, '{{ entity }}' as txn_type, {{ sign }} as sign, qbo_id, txn_date, doc_number, data
    from {{ source('raw_qbo', table) }} where not deleted
    {%- endfor %}
),

sales_lines as (
    {{ line_union(sales_types) }}
),

-- income (item lines credit the item's income account; discounts debit theirs) and sales tax
sales_detail as (
    select s.realm_id, s.txn_type, s.qbo_id, l.line_seq as seq,
           case when l.detail_type = 'SalesItemLineDetail'
                then {{ ref_id("i.data -> 'IncomeAccountRef'") }}
                else {{ ref_id("l.data -> 'DiscountLineDetail' -> 'DiscountAccountRef'") }}
           end as account_ref,
           'INCOME' as role,
           case when l.detail_type = 'SalesItemLineDetail' then -s.sign else s.sign end
               * {{ cents('l.amount') }} as amount,
           null::text as party_type, null::text as party_id
    from sales as s
    join sales_lines as l using (realm_id, txn_type, qbo_id)
    left join items as i
           on i.realm_id = s.realm_id
          and i.qbo_id = {{ ref_id("l.data -> 'SalesItemLineDetail' -> 'ItemRef'") }}
    where l.detail_type in ('SalesItemLineDetail', 'DiscountLineDetail')
    union all
    select realm_id, txn_type, qbo_id, 100000, null, 'TAX',
           -sign * {{ cents(num("data -> 'TxnTaxDetail' ->> 'TotalTax'")) }}, null, null
    from sales
),

-- the other side: A/R for invoices and credit memos, the deposit account for receipts
sales_balance as (
    select s.realm_id, s.txn_type, s.qbo_id, 100001 as seq,
           case when s.txn_type in ('SalesReceipt', 'RefundReceipt')
                then {{ ref_id("s.data -> 'DepositToAccountRef'") }} end as account_ref,
           case when s.txn_type in ('SalesReceipt', 'RefundReceipt') then 'UF' else 'AR' end as role,
           -coalesce(sum(d.amount), 0) as amount,
           case when s.txn_type in ('Invoice', 'CreditMemo')
                 and {{ ref_id("s.data -> 'CustomerRef'") }} is not null then 'Customer' end as party_type,
           case when s.txn_type in ('Invoice', 'CreditMemo')
                then {{ ref_id("s.data -> 'CustomerRef'") }} end as party_id
    from sales as s
    left join sales_detail as d using (realm_id, txn_type, qbo_id)
    group by s.realm_id, s.txn_type, s.qbo_id, s.data
),

payments as (
    select realm_id, 'Payment' as txn_type, qbo_id, 1 as seq,
           {{ ref_id("data -> 'DepositToAccountRef'") }} as account_ref, 'UF' as role,
           {{ cents('total_amt') }} as amount, null::text as party_type, null::text as party_id
    from {{ source('raw_qbo', 'payments') }} where not deleted
    union all
    select realm_id, 'Payment', qbo_id, 2,
           {{ ref_id("data -> 'ARAccountRef'") }}, 'AR', -{{ cents('total_amt') }},
           case when {{ ref_id("data -> 'CustomerRef'") }} is not null then 'Customer' end,
           {{ ref_id("data -> 'CustomerRef'") }}
    from {{ source('raw_qbo', 'payments') }} where not deleted
),

-- bills, vendor credits and purchases: one posting per expense line
expense_txns as (
    {%- for entity, table, lines, sign in expense_types %}
    {% if not loop.first %}union all{% endif %}
    select realm_id, '{{ entity }}' as txn_type,
           {% if entity == 'Purchase' %}case when data ->> 'Credit' = 'true' then -1 else 1 end{% else %}{{ sign }}{% endif %} as sign,
           qbo_id, data
    from {{ source('raw_qbo', table) }} where not deleted
    {%- endfor %}
),

expense_lines as (
    {{ line_union(expense_types) }}
),

expense_detail as (
    select t.realm_id, t.txn_type, t.qbo_id, l.line_seq as seq,
           coalesce(
               {{ ref_id("l.data -> l.detail_type -> 'AccountRef'") }},
               case when {{ ref_id("l.data -> l.detail_type -> 'ItemRef'") }} is not null
                    then coalesce({{ ref_id("i.data -> 'ExpenseAccountRef'") }},
                                  {{ ref_id("i.data -> 'AssetAccountRef'") }}) end
           ) as account_ref,
           'EXPENSE' as role,
           t.sign * {{ cents('l.amount') }} as amount,
           null::text as party_type, null::text as party_id
    from expense_txns as t
    join expense_lines as l using (realm_id, txn_type, qbo_id)
    left join items as i
           on i.realm_id = t.realm_id
          and i.qbo_id = {{ ref_id("l.data -> l.detail_type -> 'ItemRef'") }}
    where jsonb_typeof(l.data -> l.detail_type) = 'object'
),

expense_balance as (
    select t.realm_id, t.txn_type, t.qbo_id, 100001 as seq,
           case when t.txn_type = 'Purchase' then {{ ref_id("t.data -> 'AccountRef'") }}
                else {{ ref_id("t.data -> 'APAccountRef'") }} end as account_ref,
           case when t.txn_type = 'Purchase' then 'EXPENSE' else 'AP' end as role,
           -coalesce(sum(d.amount), 0) as amount,
           case when t.txn_type <> 'Purchase'
                 and {{ ref_id("t.data -> 'VendorRef'") }} is not null then 'Vendor' end as party_type,
           case when t.txn_type <> 'Purchase' then {{ ref_id("t.data -> 'VendorRef'") }} end as party_id
    from expense_txns as t
    left join expense_detail as d using (realm_id, txn_type, qbo_id)
    group by t.realm_id, t.txn_type, t.qbo_id, t.data
),

bill_payments as (
    select realm_id, 'BillPayment' as txn_type, qbo_id, 1 as seq,
           {{ ref_id("data -> 'APAccountRef'") }} as account_ref, 'AP' as role,
           {{ cents('total_amt') }} as amount,
           case when {{ ref_id("data -> 'VendorRef'") }} is not null then 'Vendor' end as party_type,
           {{ ref_id("data -> 'VendorRef'") }} as party_id
    from {{ source('raw_qbo', 'bill_payments') }} where not deleted
    union all
    select realm_id, 'BillPayment', qbo_id, 2,
           coalesce({{ ref_id("data -> 'CheckPayment' -> 'BankAccountRef'") }},
                    {{ ref_id("data -> 'CreditCardPayment' -> 'CCAccountRef'") }}),
           'EXPENSE', -{{ cents('total_amt') }}, null, null
    from {{ source('raw_qbo', 'bill_payments') }} where not deleted
),

-- deposits: each line credits where its linked payment/receipt was deposited (else its account)
linkable as (
    {%- for entity, table in [('Payment', 'payments'), ('SalesReceipt', 'sales_receipts'),
                              ('RefundReceipt', 'refund_receipts'), ('Invoice', 'invoices'),
                              ('CreditMemo', 'credit_memos'), ('JournalEntry', 'journal_entries'),
                              ('Transfer', 'transfers'), ('Purchase', 'purchases'),
                              ('Deposit', 'deposits')] %}
    {% if not loop.first %}union all{% endif %}
    select realm_id, '{{ entity }}' as txn_type, qbo_id,
           {{ ref_id("data -> 'DepositToAccountRef'") }} as deposit_account
    from {{ source('raw_qbo', table) }} where not deleted
    {%- endfor %}
),

deposit_detail as (
    select d.realm_id, 'Deposit' as txn_type, d.qbo_id, l.line_seq as seq,
           coalesce(
               case when found.txn_id is not null then found.deposit_account end,
               {{ ref_id("l.data -> 'DepositLineDetail' -> 'AccountRef'") }}
           ) as account_ref,
           'UF' as role,
           -{{ cents('l.amount') }} as amount,
           null::text as party_type, null::text as party_id
    from {{ source('raw_qbo', 'deposits') }} as d
    join {{ source('raw_qbo', 'deposit_lines') }} as l using (realm_id, qbo_id)
    left join lateral (
        select lk.qbo_id as txn_id, lk.deposit_account
        from jsonb_array_elements({{ json_array("l.data -> 'LinkedTxn'") }}) with ordinality as x (link, ord)
        join linkable as lk
          on lk.realm_id = d.realm_id and lk.txn_type = x.link ->> 'TxnType'
         and lk.qbo_id = x.link ->> 'TxnId'
        order by x.ord desc
        limit 1
    ) as found on true
    where not d.deleted
    union all
    select realm_id, 'Deposit', qbo_id, 100000,
           {{ ref_id("data -> 'CashBack' -> 'AccountRef'") }}, 'UF',
           {{ cents(num("data -> 'CashBack' ->> 'Amount'")) }}, null, null
    from {{ source('raw_qbo', 'deposits') }} where not deleted
),

deposit_balance as (
    select d.realm_id, 'Deposit' as txn_type, d.qbo_id, 100001 as seq,
           {{ ref_id("d.data -> 'DepositToAccountRef'") }} as account_ref, 'UF' as role,
           -coalesce(sum(x.amount), 0) as amount, null::text as party_type, null::text as party_id
    from {{ source('raw_qbo', 'deposits') }} as d
    left join deposit_detail as x on x.realm_id = d.realm_id and x.qbo_id = d.qbo_id
    where not d.deleted
    group by d.realm_id, d.qbo_id, d.data
),

transfers as (
    select realm_id, 'Transfer' as txn_type, qbo_id, 1 as seq,
           {{ ref_id("data -> 'ToAccountRef'") }} as account_ref, '~UF' as role,
           {{ cents(num("data ->> 'Amount'")) }} as amount, null::text as party_type, null::text as party_id
    from {{ source('raw_qbo', 'transfers') }} where not deleted
    union all
    select realm_id, 'Transfer', qbo_id, 2,
           {{ ref_id("data -> 'FromAccountRef'") }}, '~UF',
           -{{ cents(num("data ->> 'Amount'")) }}, null, null
    from {{ source('raw_qbo', 'transfers') }} where not deleted
),

journal as (
    select j.realm_id, 'JournalEntry' as txn_type, j.qbo_id, l.line_seq as seq,
           {{ ref_id("l.data -> 'JournalEntryLineDetail' -> 'AccountRef'") }} as account_ref,
           '~EQUITY' as role,
           case when l.data -> 'JournalEntryLineDetail' ->> 'PostingType' = 'Credit' then -1 else 1 end
               * {{ cents('l.amount') }} as amount,
           case when {{ ref_id("l.data -> 'JournalEntryLineDetail' -> 'Entity' -> 'EntityRef'") }} is not null
                then nullif(l.data -> 'JournalEntryLineDetail' -> 'Entity' ->> 'Type', '') end as party_type,
           case when nullif(l.data -> 'JournalEntryLineDetail' -> 'Entity' ->> 'Type', '') is not null
                then {{ ref_id("l.data -> 'JournalEntryLineDetail' -> 'Entity' -> 'EntityRef'") }} end as party_id
    from {{ source('raw_qbo', 'journal_entries') }} as j
    join {{ source('raw_qbo', 'journal_entry_lines') }} as l using (realm_id, qbo_id)
    where not j.deleted and jsonb_typeof(l.data -> 'JournalEntryLineDetail') = 'object'
),

postings as (
    select * from sales_detail
    union all select * from sales_balance
    union all select * from payments
    union all select * from expense_detail
    union all select * from expense_balance
    union all select * from bill_payments
    union all select * from deposit_detail
    union all select * from deposit_balance
    union all select * from transfers
    union all select * from journal
),

headers as (
    {%- for entity, table in [('Invoice', 'invoices'), ('SalesReceipt', 'sales_receipts'),
                              ('CreditMemo', 'credit_memos'), ('RefundReceipt', 'refund_receipts'),
                              ('Payment', 'payments'), ('Bill', 'bills'),
                              ('VendorCredit', 'vendor_credits'), ('Purchase', 'purchases'),
                              ('BillPayment', 'bill_payments'), ('Deposit', 'deposits'),
                              ('Transfer', 'transfers'), ('JournalEntry', 'journal_entries')] %}
    {% if not loop.first %}union all{% endif %}
    select realm_id, '{{ entity }}' as txn_type, qbo_id, txn_date, doc_number,
           data ->> 'PrivateNote' as memo
    from {{ source('raw_qbo', table) }} where not deleted
    {%- endfor %}
),

roles as (
    select realm_id, unnest(string_to_array(default_for, ',')) as role, account_qbo_id
    from {{ ref('accounts') }}
    where default_for is not null
),

resolved as (
    select p.*,
           coalesce(p.account_ref,
                    case when p.role like '~%' then p.role else r.account_qbo_id end,
                    '~' || p.role) as account_qbo_id
    from postings as p
    left join roles as r on r.realm_id = p.realm_id and r.role = p.role
    where p.amount <> 0
)

select
    p.realm_id,
    p.txn_type,
    p.qbo_id as txn_qbo_id,
    row_number() over (partition by p.realm_id, p.txn_type, p.qbo_id order by p.seq, p.amount)::integer
        as posting_seq,
    h.txn_date,
    h.doc_number,
    h.memo,
    p.account_qbo_id,
    coalesce(a.account_name, p.account_qbo_id) as account_name,
    coalesce(a.account_type, '') as account_type,
    coalesce(a.classification, 'Expense') as classification,
    coalesce(a.financial_statement_group, 'unclassified') as financial_statement_group,
    p.amount,
    greatest(p.amount, 0) as debit_amount,
    greatest(-p.amount, 0) as credit_amount,
    case when coalesce(a.classification, 'Expense') in ('Asset', 'Expense') then p.amount
         else -p.amount end as natural_amount,
    p.party_type,
    p.party_id as party_qbo_id,
    {{ qbo_url('p.txn_type', 'p.qbo_id') }} as qbo_url
from resolved as p
join headers as h using (realm_id, txn_type, qbo_id)
left join {{ ref('accounts') }} as a
       on a.realm_id = p.realm_id and a.account_qbo_id = p.account_qbo_id
