-- CALL replay_rejects('<table>'): re-validate the table's stored rejects that were not
-- replayed yet (e.g. after the missing department arrived). Rows that now pass are
-- inserted (or found unchanged) and marked replayed; the rest keep their rejects, with
-- their reasons brought up to date. Identical payloads are validated once.
-- CSV rejects with the right number of fields are replayed as objects; other non-objects
-- can never pass and are left as they are. Raises IBTAB for an unknown table.
create or replace procedure api.replay_rejects(
  p_table text,
  p_source text default 'sql',
  inout batch_id bigint default null,
  inout considered integer default null,
  inout inserted integer default null,
  inout unchanged integer default null,
  inout still_rejected integer default null
)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_batch data.ingest_batches;
begin
  perform internal.check_table(p_table);
  perform internal.lock_table(p_table);

  -- Temp tables made here are the owner's: CREATE fails if the caller made one of the name
  -- first (and DROP cannot drop the caller's), so nothing of the caller's is ever read.
  -- (Dropped only when there, so that no NOTICE reaches the caller.)
  if to_regclass('pg_temp.replay_map') is not null then drop table pg_temp.replay_map; end if;
  create temp table replay_map on commit drop as
  select r.batch_id as orig_batch_id, r.position as orig_position,
         case when jsonb_typeof(r.payload) = 'object' then r.payload
              else (select jsonb_object_agg(f.field, r.payload -> (f.ordinal - 1))
                      from data.dictionary_fields f where f.table_name = p_table) end as payload
    from data.ingest_rejects r
    join data.ingest_batches b on b.batch_id = r.batch_id
   where r.table_name = p_table and r.replayed_at is null
     and r.repeated_in is null  -- (the history of a reject stays as it was logged)
     -- a row that could not be read was stored as a string of what came: it can never pass
     and not r.reasons && array['bad_encoding', 'unreadable']
     and (jsonb_typeof(r.payload) = 'object'
          or (b.format = 'csv' and jsonb_typeof(r.payload) = 'array'
              and jsonb_array_length(r.payload) = (select count(*) from data.dictionary_fields f where f.table_name = p_table)));

  if to_regclass('pg_temp.replay_staged') is not null then drop table pg_temp.replay_staged; end if;
  create temp table replay_staged on commit drop as
  select row_number() over (order by min(m.orig_batch_id), min(m.orig_position)) as position, m.payload
    from pg_temp.replay_map m group by m.payload;

  perform api.open_ingest_input();
  insert into pg_temp.ingest_input (position, payload) select s.position, s.payload from pg_temp.replay_staged s;
  -- A batch marked replay: the originals are updated below, not marked repeated
  -- (770-internal.reject_dedupe.sql).
  insert into data.ingest_batches (table_name, source, format, replay) values (p_table, p_source, 'json', true)
  returning * into v_batch;
  v_batch := internal.run_ingest(v_batch);

  -- Still failing: the original rejects take the current reasons ...
  update data.ingest_rejects r
     set reasons = n.reasons
    from data.ingest_rejects n
    join pg_temp.replay_staged s on s.position = n.position
    join pg_temp.replay_map m on m.payload = s.payload
   where n.batch_id = v_batch.batch_id
     and r.batch_id = m.orig_batch_id and r.position = m.orig_position;
  -- ... the others went in (or were there already) and are marked replayed ...
  update data.ingest_rejects r
     set replayed_at = clock_timestamp(), replay_batch_id = v_batch.batch_id
    from pg_temp.replay_map m
   where r.batch_id = m.orig_batch_id and r.position = m.orig_position
     and not exists (select from data.ingest_rejects n join pg_temp.replay_staged s on s.position = n.position
                      where n.batch_id = v_batch.batch_id and s.payload = m.payload);
  -- ... and the replay batch keeps only its counts.
  delete from data.ingest_rejects n where n.batch_id = v_batch.batch_id;

  batch_id := v_batch.batch_id;
  considered := v_batch.received;
  inserted := v_batch.inserted;
  unchanged := v_batch.unchanged;
  still_rejected := v_batch.rejected;
  raise notice 'replay batch %: % distinct rejected rows re-validated, % inserted, % unchanged, % still rejected',
    batch_id, considered, inserted, unchanged, still_rejected;
end $$;

comment on procedure api.replay_rejects(text, text, bigint, integer, integer, integer, integer) is
  'Re-validate the stored rejects of a table; rows that now pass are inserted and marked replayed.';
