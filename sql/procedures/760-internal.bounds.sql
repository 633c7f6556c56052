-- Bounded growth of what anyone may add by sending requests: the stored payload of a
-- rejected row, the ingest log per table and the idempotency keys. The caps are settings
-- (the API server sets them per connection from REJECT_PAYLOAD_MAX_BYTES,
-- INGEST_LOG_MAX_BATCHES, INGEST_LOG_MAX_REJECTS and IDEMPOTENCY_MAX_KEYS when those are
-- set); otherwise, and in other sessions, the defaults below: their one home.

-- A setting hirebase.<name> as a positive integer, or the default.
create or replace function internal.cap(p_name text, p_default bigint) returns bigint
language sql stable set search_path = pg_catalog, pg_temp as $$
  select case when s ~ '^[0-9]{1,15}$' and s::bigint > 0 then s::bigint else p_default end
    from (select current_setting('hirebase.' || p_name, true) as s) x
$$;

-- A reject's payload beyond the cap is kept as a prefix of its text, its length and its
-- SHA-256: enough to recognise it, never megabytes per row.
create or replace function internal.cap_reject_payload() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
  v_max bigint := internal.cap('reject_payload_max_bytes', 1024);
  v_text text;
begin
  if pg_column_size(new.payload) > v_max then
    v_text := new.payload::text;
    new.payload := jsonb_build_object('truncated', true, 'bytes', octet_length(v_text),
      'sha256', encode(sha256(convert_to(v_text, 'UTF8')), 'hex'), 'prefix', left(v_text, (v_max / 4)::integer));
  end if;
  return new;
end $$;
create or replace trigger ingest_rejects_cap_payload before insert on data.ingest_rejects
  for each row execute function internal.cap_reject_payload();

-- Every 32nd batch of a table drops that table's oldest batches (their rejects with them)
-- beyond the newest INGEST_LOG_MAX_BATCHES batches and INGEST_LOG_MAX_REJECTS rejects.
create or replace function internal.cap_ingest_log() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  delete from data.ingest_batches where table_name = new.table_name and batch_id <= (
    select batch_id from data.ingest_batches where table_name = new.table_name
     order by batch_id desc offset internal.cap('ingest_log_max_batches', 100000) limit 1);
  -- (<: the batch that holds the cap-th reject stays, so a load with more rejects keeps its own log)
  delete from data.ingest_batches where table_name = new.table_name and batch_id < (
    select batch_id from data.ingest_rejects where table_name = new.table_name
     order by batch_id desc offset internal.cap('ingest_log_max_rejects', 1000000) limit 1);
  return null;
end $$;
create or replace trigger ingest_batches_cap after insert on data.ingest_batches
  for each row when (new.batch_id % 32 = 0) execute function internal.cap_ingest_log();

-- Each new key drops the oldest beyond the newest IDEMPOTENCY_MAX_KEYS (an index scan of the cap).
create or replace function internal.cap_idempotency_keys() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  delete from data.idempotency_keys where created_at <= (
    select created_at from data.idempotency_keys order by created_at desc offset internal.cap('idempotency_max_keys', 10000) limit 1);
  return null;
end $$;
create or replace trigger idempotency_keys_cap after insert on data.idempotency_keys
  for each row execute function internal.cap_idempotency_keys();
