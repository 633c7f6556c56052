-- 0009: the reject log is an audit trail no caller can rewrite. A row rejected again no longer
-- takes its older entry away from the batch that logged it: that entry stays, marked with the
-- batch that rejected it again (repeated_in), which holds the current one
-- (sql/procedures/770-internal.reject_dedupe.sql). And a replay's batch is marked by the owner
-- (replay), no longer by a setting (hirebase.replaying) any caller could SET.
alter table data.ingest_batches add column replay boolean not null default false;
alter table data.ingest_rejects add column repeated_in bigint;
-- The look-up of a new reject's predecessors considers current entries only.
drop index data.ingest_rejects_dedupe_idx;
create index ingest_rejects_dedupe_idx on data.ingest_rejects (table_name, md5(payload::text)) where replayed_at is null and repeated_in is null;
