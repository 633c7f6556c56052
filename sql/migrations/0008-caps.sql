-- 0008: the caps of sql/procedures/760-internal.bounds.sql (a rejected row's stored payload,
-- the ingest log, the idempotency keys) as the API server sets them at start
-- (runner.set_caps): a table only the owner writes. Session settings, which they were,
-- are the caller's to SET, also inside the SECURITY DEFINER routines that fire the triggers.
create table internal.caps (
  name  text primary key check (name in ('reject_payload_max_bytes', 'ingest_log_max_batches', 'ingest_log_max_rejects', 'idempotency_max_keys')),
  value bigint not null check (value > 0)
);
