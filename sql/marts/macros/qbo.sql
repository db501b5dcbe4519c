{#- Helpers shared by the models. -#}

{#- URL that opens a QBO record in the QBO web app (R26). -#}
{% macro qbo_url(txn_type, qbo_id) -%}
    ('https://app.qbo.intuit.com/app/'
     || case {{ txn_type }}
            when 'Invoice' then 'invoice?txnId='
            when 'Payment' then 'recvpayment?txnId='
            when 'SalesReceipt' then 'salesreceipt?txnId='
            when 'Estimate' then 'estimate?txnId='
            when 'CreditMemo' then 'creditmemo?txnId='
            when 'RefundReceipt' then 'refundreceipt?txnId='
            when 'Bill' then 'bill?txnId='
            when 'BillPayment' then 'billpayment?txnId='
            when 'VendorCredit' then 'vendorcredit?txnId='
            when 'Purchase' then 'expense?txnId='
            when 'Deposit' then 'deposit?txnId='
            when 'Transfer' then 'transfer?txnId='
            when 'JournalEntry' then 'journal?txnId='
            when 'Customer' then 'customerdetail?nameId='
            when 'Vendor' then 'vendordetail?nameId='
            else lower({{ txn_type }}) || '?txnId='
        end
     || {{ qbo_id }})
{%- endmacro %}

{#- The Id of a QBO reference object ({"value": "12", "name": ...}); NULL when absent or empty. -#}
{% macro ref_id(expr) -%}
    nullif(({{ expr }}) ->> 'value', '')
{%- endmacro %}

{#- A JSON number (or numeric string) as numeric; NULL when it is not one (never fails a view). -#}
{% macro num(expr) -%}
    (case when ({{ expr }}) ~ '^\s*-?[0-9]+(\.[0-9]+)?\s*$' then trim({{ expr }})::numeric end)
{%- endmacro %}

{#- Money to the cent, rounding half to even like QBO's (and the sandbox's) Decimal quantize. -#}
{% macro cents(expr) -%}
    (case when coalesce({{ expr }}, 0) * 100 - trunc(coalesce({{ expr }}, 0) * 100) in (0.5, -0.5)
          then 2 * round(coalesce({{ expr }}, 0) * 50) / 100
          else round(coalesce({{ expr }}, 0), 2) end)::numeric(18, 2)
{%- endmacro %}

{#- A jsonb array (or an empty one when the value is missing or not an array). -#}
{% macro json_array(expr) -%}
    (case when jsonb_typeof({{ expr }}) = 'array' then {{ expr }} else '[]'::jsonb end)
{%- endmacro %}

{#- The line tables of several transaction types as one relation (txn_type, realm_id, qbo_id,
    line_seq, detail_type, amount, data); `types` holds (entity, table, line table, sign). -#}
{% macro line_union(types) -%}
    {%- for entity, table, lines, sign in types %}
    {% if not loop.first %}union all{% endif %}
    select '{{ entity }}' as txn_type, realm_id, qbo_id, line_seq, detail_type, amount, data
    from {{ source('raw_qbo', lines) }}
    {%- endfor %}
{%- endmacro %}

{#- The sync's link of a QBO record to its source record (alias s): source_id, created_by. -#}
{% macro sync_link(alias, qbo_entity) -%}
left join {{ source('sync', 'record_state') }} as s
       on s.realm_id = {{ alias }}.realm_id and s.qbo_entity = '{{ qbo_entity }}'
      and s.qbo_id = {{ alias }}.qbo_id
{%- endmacro %}
