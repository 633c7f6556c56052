-- The ingest engine, part 4 of 4: the entry points. api.ingest_staged validates and writes
-- what is staged as one new batch with the table's compiled function (202-ingest.compile.sql);
-- batches share the table's lock, a bulk write (a load) takes it exclusively.

drop function if exists internal.set_foreign_keys_aside(text);
drop function if exists internal.put_foreign_keys_back(text, text[]);

-- Drops the table's indexes that back no constraint, and returns the statements that put
-- them back. Also gives this transaction memory for the big sorts.
create or replace function internal.set_aside(p_table text) returns text[]
language plpgsql volatile as $$
declare
  v_table regclass := format('data.%I', p_table)::regclass;
  v_indexes text[] := '{}';
  r record;
begin
  -- JIT compiling the generated statement costs more than it saves (about 1 s per million rows).
  perform set_config('work_mem', '256MB', true), set_config('maintenance_work_mem', '512MB', true), set_config('jit', 'off', true);
  for r in select i.indexrelid::regclass as index, pg_get_indexdef(i.indexrelid) as def from pg_index i
            where i.indrelid = v_table and not exists (select from pg_constraint c where c.conindid = i.indexrelid) order by 1 loop
    execute format('drop index %s', r.index);
    v_indexes := v_indexes || r.def;
  end loop;
  return v_indexes;
end $$;

create or replace function internal.put_back(p_statements text[]) returns void
language plpgsql volatile as $$
declare
  v_statement text;
begin
  foreach v_statement in array p_statements loop
    execute v_statement;
  end loop;
end $$;

-- Runs the table's compiled function on everything staged in ingest_input for an open batch,
-- and records the counts.
create or replace function internal.run_ingest(p_batch data.ingest_batches) returns data.ingest_batches
language plpgsql volatile as $$
declare
  v_counts record;
  v_again record;
  v_aside text[] := '{}';
  v_input regclass := internal.check_own_temp('ingest_input');  -- before anything reads it
  v_rows bigint := (select count(*) from pg_temp.ingest_input);
  v_bulk boolean := v_rows > internal.bulk_threshold();
  v_function text := format('internal.%I', internal.ingest_function_name(p_batch.table_name, p_batch.format));
  v_merge text := current_setting('enable_mergejoin');
begin
  if v_bulk then
    perform internal.lock_table(p_batch.table_name);
    v_aside := internal.set_aside(p_batch.table_name);
    analyze pg_temp.ingest_input;  -- a temp table has no statistics until asked
  else
    perform internal.share_table(p_batch.table_name);
  end if;
  if v_rows <= internal.max_batch_rows() then
    -- A batch looks its ids up in the table's primary key; a merge join would read the
    -- whole index instead, for every batch.
    perform set_config('enable_mergejoin', 'off', true);
  end if;
  execute format('select * from %s($1, $2)', v_function) into v_counts using p_batch.batch_id, v_bulk;
  if cardinality(v_counts.lost) > 0 then
    -- Another batch inserted some of these ids first and has committed (the insert waited
    -- for it): those rows are judged again, now that its rows are visible.
    delete from pg_temp.ingest_input where position <> all (v_counts.lost);
    execute format('select * from %s($1, $2)', v_function) into v_again using p_batch.batch_id, false;
    if cardinality(v_again.lost) > 0 then
      raise exception 'batch %: ids inserted by another batch are still not visible to this one', p_batch.batch_id
        using errcode = '40001', hint = 'run batches in READ COMMITTED, or retry the transaction';
    end if;
    v_counts.inserted := v_counts.inserted + v_again.inserted;
    v_counts.unchanged := v_counts.unchanged + v_again.unchanged;
    v_counts.rejected := v_counts.rejected + v_again.rejected;
  end if;
  perform set_config('enable_mergejoin', v_merge, true);
  perform internal.put_back(v_aside);
  update data.ingest_batches
     set received = v_counts.received, inserted = v_counts.inserted, unchanged = v_counts.unchanged,
         rejected = v_counts.rejected, finished_at = clock_timestamp()
   where batch_id = p_batch.batch_id
  returning * into p_batch;
  perform internal.empty_ingest_input();
  return p_batch;
end $$;

-- Validates and writes everything staged in ingest_input as one new batch; p_csv: the
-- payloads are arrays of CSV fields. Returns the batch's log row. Used by the CSV loader.
create or replace function api.ingest_staged(p_table text, p_source text, p_csv boolean default false) returns data.ingest_batches
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_batch data.ingest_batches;
begin
  perform internal.check_table(p_table);
  insert into data.ingest_batches (table_name, source, format)
  values (p_table, p_source, case when p_csv then 'csv' else 'json' end)
  returning * into v_batch;
  return internal.run_ingest(v_batch);
end $$;
