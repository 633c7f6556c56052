-- Bounded growth of what anyone may add by sending requests: the stored payload of a
-- rejected row, the ingest log per table and the idempotency keys. The caps are rows of
-- internal.caps (migration 0008), which the API server writes at start from
-- REJECT_PAYLOAD_MAX_BYTES, INGEST_LOG_MAX_BATCHES, INGEST_LOG_MAX_REJECTS and
-- IDEMPOTENCY_MAX_KEYS when set (runner.set_caps); a cap not there has the default below,
-- its one home. Never a
-- session's own setting: the triggers run inside the SECURITY DEFINER routines, and a caller's
-- SET hirebase.ingest_log_max_batches = 1 had them delete everyone's ingest log.

-- The cap p_name as set (internal.caps), or the default.
create or replace function internal.cap(p_name text, p_default bigint) returns bigint
language sql stable set search_path = pg_catalog, pg_temp
return coalesce((select c.value from internal.caps c where c.name = p_name), p_default);

-- Sets the caps given (a JSON object of cap names and whole numbers >= 1), and puts the others
-- back to their defaults; the owner's runner calls it at the API server's start. Writes only
-- what changes.
create or replace function runner.set_caps(p_caps jsonb) returns void
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
declare
  r record;
begin
  for r in select key, value from jsonb_each_text(p_caps) loop
    -- (a JSON null is no number either: it failed the table's NOT NULL, 23502)
    if r.value is null or r.value !~ '^[0-9]{1,15}$' or r.value::bigint < 1 then
      raise exception 'the cap % must be a whole number >= 1, got %', r.key, r.value using errcode = '22023';
    end if;
  end loop;
  -- (an unknown name fails the table's check: 23514)
  insert into internal.caps (name, value) select key, value::bigint from jsonb_each_text(p_caps)
  on conflict (name) do update set value = excluded.value where caps.value <> excluded.value;
  delete from internal.caps c where not p_caps ? c.name;
end $$;

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
