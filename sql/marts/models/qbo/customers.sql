-- QBO Customers per company, with the source contact the sync linked (if any).
select
    c.realm_id,
    c.qbo_id,
    s.source_id,
    s.created_by,
    c.name as display_name,
    c.data ->> 'FullyQualifiedName' as fully_qualified_name,
    c.data ->> 'CompanyName' as company_name,
    c.data ->> 'GivenName' as given_name,
    c.data ->> 'FamilyName' as family_name,
    c.data -> 'PrimaryEmailAddr' ->> 'Address' as email,
    c.data -> 'PrimaryPhone' ->> 'FreeFormNumber' as phone,
    {{ ref_id("c.data -> 'ParentRef'") }} as parent_qbo_id,
    coalesce(c.active, true) as active,
    coalesce(c.balance, 0) as balance,
    coalesce({{ num("c.data ->> 'BalanceWithJobs'") }}, c.balance, 0) as balance_with_jobs,
    c.created_time,
    c.updated_time,
    c.deleted,
    {{ qbo_url("'Customer'", 'c.qbo_id') }} as qbo_url
from {{ source('raw_qbo', 'customers') }} as c
{{ sync_link('c', 'Customer') }}
