-- CALL ingest_batch('<table>', '<json array of 1..1000 row objects>'):
-- validates every row with the data dictionary's rules, inserts the valid ones,
-- logs the batch and every reject, in the caller's transaction. Returns the
-- batch id and counts (and says them in a NOTICE).
-- Raises IBTAB unknown table, IBARR not an array, IBEMP empty, IBBIG over 1000 rows,
-- IBJSN not JSON. The rows come as text, so that a row PostgreSQL cannot read as jsonb
-- (a \u0000 escape, say) costs that row, not the call: a quoted literal picks this
-- signature; a jsonb value the one below.
create or replace procedure api.ingest_batch(
  p_table text,
  p_rows text,
  p_source text default 'sql',
  inout batch_id bigint default null,
  inout received integer default null,
  inout inserted integer default null,
  inout unchanged integer default null,
  inout rejected integer default null
)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_batch data.ingest_batches;
  v_problem record;
begin
  perform internal.check_table(p_table);
  select * into v_problem from internal.stage_json_batch(p_rows, 'json');
  if found then
    raise exception '%', v_problem.message using errcode = v_problem.sqlstate,
      hint = format('send a JSON array of 1 to %s row objects, e.g. [{"field": value, ...}]', internal.max_batch_rows());
  end if;
  v_batch := api.ingest_staged(p_table, p_source);

  batch_id := v_batch.batch_id;
  received := v_batch.received;
  inserted := v_batch.inserted;
  unchanged := v_batch.unchanged;
  rejected := v_batch.rejected;
  raise notice 'batch %: % received, % inserted, % unchanged, % rejected (details: select * from ingest_rejects where batch_id = %)',
    batch_id, received, inserted, unchanged, rejected, batch_id;
end $$;

create or replace procedure api.ingest_batch(
  p_table text,
  p_rows jsonb,
  p_source text default 'sql',
  inout batch_id bigint default null,
  inout received integer default null,
  inout inserted integer default null,
  inout unchanged integer default null,
  inout rejected integer default null
)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  call api.ingest_batch(p_table, p_rows::text, p_source, batch_id, received, inserted, unchanged, rejected);
end $$;

comment on procedure api.ingest_batch(text, text, text, bigint, integer, integer, integer, integer) is
  'Validate and insert 1..1000 rows given as a JSON array of objects; every reject is logged in ingest_rejects.';
