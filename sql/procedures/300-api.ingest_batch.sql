-- CALL ingest_batch('<table>', '<json array of 1..1000 row objects>'):
-- validates every row with the data dictionary's rules, inserts the valid ones,
-- logs the batch and every reject, in the caller's transaction. Returns the
-- batch id and counts (and says them in a NOTICE).
-- Raises IBTAB unknown table, IBARR not an array, IBEMP empty, IBBIG over 1000 rows.
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
language plpgsql as $$
declare
  v_batch data.ingest_batches;
begin
  perform internal.check_table(p_table);
  if p_rows is null or jsonb_typeof(p_rows) <> 'array' then
    raise exception 'a batch must be a JSON array of row objects, got %', coalesce(jsonb_typeof(p_rows), 'null')
      using errcode = 'IBARR', hint = 'send [{"field": value, ...}, ...]';
  elsif jsonb_array_length(p_rows) = 0 then
    raise exception 'the batch is empty: send 1 to 1000 rows'
      using errcode = 'IBEMP';
  elsif jsonb_array_length(p_rows) > 1000 then
    raise exception 'the batch has % rows: the limit is 1000 rows per batch', jsonb_array_length(p_rows)
      using errcode = 'IBBIG', hint = 'split it into batches of at most 1000 rows';
  end if;

  perform api.open_ingest_input();
  insert into pg_temp.ingest_input (position, payload)
  select ordinality, value from jsonb_array_elements(p_rows) with ordinality;
  v_batch := api.ingest_staged(p_table, p_source);

  batch_id := v_batch.batch_id;
  received := v_batch.received;
  inserted := v_batch.inserted;
  unchanged := v_batch.unchanged;
  rejected := v_batch.rejected;
  raise notice 'batch %: % received, % inserted, % unchanged, % rejected (details: select * from ingest_rejects where batch_id = %)',
    batch_id, received, inserted, unchanged, rejected, batch_id;
end $$;

comment on procedure api.ingest_batch(text, jsonb, text, bigint, integer, integer, integer, integer) is
  'Validate and insert 1..1000 rows given as a JSON array of objects; every reject is logged in ingest_rejects.';
