{{ config(meta={'dagster': {'ref': {'name': 'open_problems'}}}) }}
-- Exactly one open-problem row per record, and every held-back record has one (a disconnected
-- company's problems are set aside while it is, as open_problems leaves them out).
select s.realm_id, s.record_key
from {{ ref('sync_status') }} as s
left join {{ source('sync', 'companies') }} as c on c.realm_id = s.realm_id
where s.held_back
  and c.status is distinct from 'disconnected'
  and (select count(*) from {{ ref('open_problems') }} as p
       where p.realm_id = s.realm_id and p.entity = s.entity
         and p.record_id = coalesce(s.source_id, s.qbo_id)) <> 1
