-- QBO Vendors per company, with the source worker the sync linked (if any).
select
    v.realm_id,
    v.qbo_id,
    s.source_id,
    s.created_by,
    v.name as display_name,
    v.data ->> 'CompanyName' as company_name,
    v.data ->> 'GivenName' as given_name,
    v.data ->> 'FamilyName' as family_name,
    v.data -> 'PrimaryEmailAddr' ->> 'Address' as email,
    coalesce(v.active, true) as active,
    coalesce(v.balance, 0) as balance,
    v.created_time,
    v.updated_time,
    v.deleted,
    {{ qbo_url("'Vendor'", 'v.qbo_id') }} as qbo_url
from {{ source('raw_qbo', 'vendors') }} as v
{{ sync_link('v', 'Vendor') }}
