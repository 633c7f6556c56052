-- 0007: a reload does not log the same reject again. The trigger in
-- sql/procedures/770-internal.reject_dedupe.sql looks a new reject's identical pending
-- predecessors up by table and payload hash here.
create index ingest_rejects_dedupe_idx on data.ingest_rejects (table_name, md5(payload::text)) where replayed_at is null;
