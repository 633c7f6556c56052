-- The ingest engine, part 5: a parallel load (load.mjs --jobs K, src/load.ts). One file, all or
-- nothing, validated on K connections at once:
--   1. runner.begin_load (the coordinator's session): removes what killed loads left, and holds
--      the table's lock (exclusive; its parents' shared) for the session, so nothing else writes
--      the table (or removes a parent row) until the load ends;
--   2. runner.stage_share (each worker, in its own transaction): validates the rows it staged
--      in its pg_temp.ingest_input with the same generated statement as every other path
--      (internal.ingest_statement, steps 1-5) and keeps the verdict in the unlogged table
--      internal.load_<load>_<worker>, committed. The rows are split by id value, so every copy
--      of an id meets in one worker and the duplicate check stays local;
--   3. runner.finish_load (one statement, so one transaction): logs the batch and its rejects
--      and inserts the valid rows of every worker into the real table, then drops the stages.
--      The target table and the ingest log change only here;
--   4. runner.end_load: releases the locks (and drops the stages of a load that failed).
-- A load killed before 3 commits leaves only its stages, which the next load removes: the load
-- id is the coordinator's backend pid, whose session lock hirebase.load/<pid> ends with it.
-- Two-phase commit would need max_prepared_transactions > 0, which most servers lack.

-- The verdict tables (unlogged) of load p_load, or of every load when null.
create or replace function internal.load_stages(p_load integer default null) returns setof regclass
language sql stable as $$
  select c.oid::regclass from pg_class c
   where c.relnamespace = 'internal'::regnamespace and c.relkind = 'r' and c.relname ~ '^load_[0-9]+_[0-9]+$'
     and (p_load is null or c.relname like 'load\_' || p_load || '\_%')
   order by c.relname
$$;

create or replace function runner.begin_load(p_table text) returns integer
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
declare
  v_load integer := pg_backend_pid();
  v_stage regclass;
begin
  perform internal.check_table(p_table);
  for v_stage in select internal.load_stages() loop
    -- A stage whose load still runs is left alone: its coordinator holds hirebase.load/<load>.
    if (regexp_match(v_stage::text, 'load_([0-9]+)_'))[1]::integer = v_load
       or pg_try_advisory_xact_lock(hashtext('hirebase.load'), (regexp_match(v_stage::text, 'load_([0-9]+)_'))[1]::integer) then
      execute format('drop table %s', v_stage);
    end if;
  end loop;
  perform pg_advisory_lock(hashtext('hirebase.load'), v_load);
  -- The table's ingest lock (200-ingest.locks.sql), held by the session until runner.end_load.
  perform internal.take_table_lock(p_table, false, true);
  return v_load;
end $$;

-- A worker: validates what this session staged in ingest_input as share p_worker of load
-- p_load, and keeps the verdict (committed with the worker's transaction). Returns its rows.
create or replace function runner.stage_share(p_load integer, p_table text, p_worker integer) returns bigint
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
declare
  v_rows bigint;
begin
  perform internal.check_table(p_table), internal.check_own_temp('ingest_input');
  perform set_config('work_mem', '128MB', true), set_config('jit', 'off', true);
  analyze pg_temp.ingest_input;  -- a temp table has no statistics until asked
  execute format('create unlogged table internal.%I as %s', format('load_%s_%s', p_load, p_worker),
                 internal.ingest_statement(p_table, true, false, true));
  get diagnostics v_rows = row_count;
  return v_rows;
end $$;

-- Writes the verdicts of every worker of load p_load as one batch: rejects logged, valid new
-- rows inserted in key order (the per-quarter counts then run once, per statement), counts
-- recorded; drops the stages. The caller's session holds the table (runner.begin_load).
create or replace function runner.finish_load(p_load integer, p_table text, p_source text) returns data.ingest_batches
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
declare
  v_key text := (internal.check_table(p_table)).key_field;
  v_stages text := (select string_agg(format('select * from %s', s), ' union all ') from internal.load_stages(p_load) s);
  v_columns text := (select string_agg(quote_ident(field), ', ' order by ordinal) from data.dictionary_fields where table_name = p_table);
  v_batch data.ingest_batches;
  v_aside text[] := '{}';
  v_received integer;
  v_unchanged integer;
  v_rejected integer;
  v_inserted integer;
begin
  if v_stages is null then
    raise exception 'load %: no validated rows of % to write', p_load, p_table;
  end if;
  perform internal.lock_table(p_table);
  execute format('select count(*), count(*) filter (where unchanged) from (%s) s', v_stages) into v_received, v_unchanged;
  insert into data.ingest_batches (table_name, source, format) values (p_table, p_source, 'csv') returning * into v_batch;
  if v_received > internal.bulk_threshold() then
    v_aside := internal.set_aside(p_table);
  end if;
  execute format('insert into data.ingest_rejects (batch_id, table_name, position, payload, reasons)
                  select $1, $2, position, payload, reasons from (%s) s where cardinality(reasons) > 0', v_stages)
    using v_batch.batch_id, p_table;
  get diagnostics v_rejected = row_count;
  execute format('insert into data.%I (%s) select %s from (%s) s where reasons = ''{}'' and not unchanged order by %I',
                 p_table, v_columns, v_columns, v_stages, v_key);
  get diagnostics v_inserted = row_count;
  perform internal.put_back(v_aside);
  update data.ingest_batches
     set received = v_received, inserted = v_inserted, unchanged = v_unchanged, rejected = v_rejected, finished_at = clock_timestamp()
   where batch_id = v_batch.batch_id
  returning * into v_batch;
  execute (select string_agg(format('drop table %s;', s), ' ') from internal.load_stages(p_load) s);
  return v_batch;
end $$;

-- Ends load p_load of the session: drops what is left of its stages (a failed load) and
-- releases the locks runner.begin_load took.
create or replace function runner.end_load(p_load integer, p_table text) returns void
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
declare
  v_stage regclass;
begin
  for v_stage in select internal.load_stages(p_load) loop
    execute format('drop table %s', v_stage);
  end loop;
  perform internal.release_table_lock(p_table);
  perform pg_advisory_unlock(hashtext('hirebase.load'), p_load);
end $$;

-- Which field of a record routes it to a worker: the table's key, as its 0-based place in the
-- file's fields.
create or replace function runner.key_index(p_table text) returns integer
language sql stable set search_path = pg_catalog, pg_temp as $$
  select count(*)::integer from data.dictionary_fields f
   where f.table_name = p_table
     and f.ordinal < (select k.ordinal from data.dictionary_fields k join data.dictionary_tables t
                       on t.table_name = k.table_name and t.key_field = k.field where k.table_name = p_table)
$$;
