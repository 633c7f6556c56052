-- The one ingest engine behind every path (psql CALL, CSV load, REST API).
-- Rows wait in the session's temp table ingest_input: JSON rows as payload, CSV records
-- as fields (text[], no JSON parsing on the way in). The engine validates them all in one
-- set-based statement generated from the data dictionary, inserts the valid ones, logs the
-- batch and every reject.
-- Raises IBTAB for an unknown table. Takes the table's ingest lock until commit: shared for a
-- batch, exclusive for a bulk write.

-- A temp table in this session that the current user (in a SECURITY DEFINER routine: the
-- owner) made itself, or 42501. The session's caller shares pg_temp and could have made an
-- object of that name first, with a trigger or a rule that would then run as the owner. Only
-- a table's owner can add triggers, rules or policies to it, or make it a view, and nobody can
-- give a table to a role he is not a member of: so a plain table owned by the current user,
-- with none of those, is one the caller cannot have touched.
create or replace function internal.check_own_temp(p_name text) returns regclass
language plpgsql stable as $$
declare
  v_table regclass := to_regclass('pg_temp.' || quote_ident(p_name));
begin
  if v_table is null or not exists (
      select from pg_class c
       where c.oid = v_table and c.relnamespace = pg_my_temp_schema() and c.relkind = 'r'
         and c.relowner = (select oid from pg_roles where rolname = current_user) and not c.relhastriggers and not c.relhasrules
         and not c.relrowsecurity and not c.relhassubclass) then
    raise exception 'the temporary table % of this session was not made by %', p_name, current_user
      using errcode = '42501', hint = 'drop your own pg_temp.' || quote_ident(p_name) || ' or start a new session';
  end if;
  return v_table;
end $$;

-- Creates (once per session) or empties the staging table, which the owner makes and checks.
create or replace function api.open_ingest_input() returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
begin
  if to_regclass('pg_temp.ingest_input') is null then
    -- unreadable: the reason code of a row that could not be staged as it came (bad_encoding,
    -- unreadable); its payload is then what was received, as a JSON string.
    create temp table ingest_input (position bigint not null, payload jsonb, fields text[], unreadable text) on commit delete rows;
  end if;
  perform internal.check_own_temp('ingest_input');
  truncate pg_temp.ingest_input;
end $$;

create or replace function internal.check_table(p_table text) returns data.dictionary_tables
language plpgsql stable as $$
declare
  v_table data.dictionary_tables;
begin
  select * into v_table from data.dictionary_tables where table_name = p_table;
  if not found then
    raise exception 'unknown table "%"', p_table
      using errcode = 'IBTAB',
            hint = (select 'use one of: ' || string_agg(table_name, ', ' order by load_order) from data.dictionary_tables);
  end if;
  return v_table;
end $$;

-- The tables a table references (departments and jobs for employees), shared, in load
-- order: a write to a table never interleaves with a restore of a table it references, which
-- could delete a parent between a batch's reference check and its insert. Every taker of
-- these locks goes in load order, so they cannot deadlock.
create or replace function internal.share_parents(p_table text) returns void
language plpgsql volatile as $$
declare
  r record;
begin
  for r in select distinct t.table_name, t.load_order from data.dictionary_fields f join data.dictionary_tables t on t.table_name = f.ref_table
            where f.table_name = p_table and f.ref_table <> p_table order by t.load_order loop
    perform pg_advisory_xact_lock_shared(hashtext('hirebase.table'), hashtext(r.table_name));
  end loop;
end $$;

-- Ingest, backup and restore of one table never interleave: all take this lock (after the
-- shared locks on the tables it references).
create or replace function internal.lock_table(p_table text) returns void
language plpgsql volatile as $$
begin
  perform internal.share_parents(p_table);
  perform pg_advisory_xact_lock(hashtext('hirebase.table'), hashtext(p_table));
end $$;

-- The same lock, shared: batches of a table run side by side (they insert with ON CONFLICT
-- and judge again the rows another batch inserted first), but never beside a backup, a
-- restore or a bulk load, which take it exclusively.
create or replace function internal.share_table(p_table text) returns void
language plpgsql volatile as $$
begin
  perform internal.share_parents(p_table);
  perform pg_advisory_xact_lock_shared(hashtext('hirebase.table'), hashtext(p_table));
end $$;

-- The validating statement for one table; p_csv: the rows are CSV records (fields, all
-- text) rather than JSON objects (payload); p_concurrent: other batches may insert the same
-- new ids meanwhile (the insert then skips them, and returns their positions as lost). $1 is
-- the batch id. Exposed for inspection:
--   select internal.ingest_statement('employees', false);
drop function if exists internal.ingest_statement(text, boolean);
create or replace function internal.ingest_statement(p_table text, p_csv boolean, p_concurrent boolean default false) returns text
language plpgsql stable as $$
declare
  v_table  data.dictionary_tables := internal.check_table(p_table);
  v_fields text[];
  v_count  integer;
  f        record;
  v_shape_ok text;  v_shape_reasons text;
  v_checks text := '';  v_values text := '';  v_reasons text := '';  v_joins text := '';  v_fields_sql text := '';
  v_columns text;  v_new text;  v_old text;
begin
  select array_agg(field order by ordinal), count(*) into v_fields, v_count
    from data.dictionary_fields where table_name = p_table;

  if p_csv then
    v_shape_ok := format('unreadable is null and coalesce(cardinality(fields), 0) = %s', v_count);
    v_shape_reasons := format('case when unreadable is not null then array[unreadable]
            when coalesce(cardinality(fields), 0) = %s then ''{}''::text[] else array[''wrong_field_count''] end', v_count);
  else
    v_shape_ok := 'unreadable is null and jsonb_typeof(payload) = ''object''';
    v_shape_reasons := format(
      'case when unreadable is not null then array[unreadable]
            when jsonb_typeof(payload) <> ''object'' then array[''not_an_object'']
            when (payload - %1$L::text[]) = ''{}''::jsonb then ''{}''::text[]
            else array(select ''unknown_field:'' || k from jsonb_object_keys(payload - %1$L::text[]) k order by k) end',
      v_fields);
  end if;

  for f in select d.*, r.key_field as ref_key
             from data.dictionary_fields d left join data.dictionary_tables r on r.table_name = d.ref_table
            where d.table_name = p_table order by d.ordinal loop
    declare
      v_get text := format('j.%I', f.field);
      -- A CSV field is always a string (an absent one empty): a constant the planner folds into the rules.
      v_type text := case when p_csv then '''string''' else quote_ident('k_' || f.field) end;
      v_text text := quote_ident('t_' || f.field);
      v_check text := case f.kind
        when 'id' then format('internal.id_reasons(%L, %s, %s)', f.field, v_type, v_text)
        when 'name' then format('internal.name_reasons(%L, %s, %s, %s)', f.field, v_type, v_text, f.max_length)
        when 'datetime' then format('internal.datetime_reasons(%L, %s, %s)', f.field, v_type, v_text) end;
    begin
      -- Each field's JSON type and trimmed text, computed once (the CTEs are materialized).
      v_fields_sql := v_fields_sql || case when p_csv
        then format(', internal.trim_blank(coalesce(fields[%s], %L)) as %s', f.ordinal, '', v_text)
        else format(', jsonb_typeof(%s) as %s, internal.field_text(%s) as %s', v_get, v_type, v_get, v_text) end;
      v_checks := v_checks || format(', case when shape_ok then %s else ''{}''::text[] end as %I', v_check, 'r_' || f.field);
      v_values := v_values || format(', case when shape_ok and %I = ''{}'' then internal.%s_value(%s) end as %I',
                                     'r_' || f.field, f.kind, v_text, f.field);
      v_reasons := v_reasons || format(' || %I', 'r_' || f.field);
      if f.ref_table is not null then
        v_joins := v_joins || format(' left join data.%1$I %2$I on %2$I.%3$I = t.%4$I', f.ref_table, 'ref_' || f.field, f.ref_key, f.field);
        v_reasons := v_reasons || format(' || case when t.%1$I is not null and %2$I.%3$I is null then array[%4$L] else ''{}''::text[] end',
                                         f.field, 'ref_' || f.field, f.ref_key, 'unknown_reference:' || f.field);
      end if;
    end;
  end loop;

  select string_agg(format('%I', x), ', '), string_agg(format('t.%I', x), ', '), string_agg(format('cur.%I', x), ', ')
    into v_columns, v_new, v_old from unnest(v_fields) x;

  return format($sql$
    with shaped as materialized (
      -- The input stays behind in ingest_input: only rejects need it, joined back by position.
      select position, %1$s as shape_ok, %2$s as shape_reasons %14$s from pg_temp.ingest_input %15$s
    ), checked as materialized (
      select * %3$s from shaped
    ), typed as (
      select * %4$s from checked
    ), verdict as (
      select t.position, %5$s,
             shape_reasons %6$s as field_reasons,
             cur.%7$I is not null as known,
             (%8$s) is not distinct from (%9$s) as same
        from typed t %10$s
        left join data.%11$I cur on cur.%7$I = t.%7$I
    ), judged as (
      select v.*, field_reasons || case
               when %7$I is not null and ((known and not same)
                 -- an earlier row with this id is valid (one aggregate per id, no per-row frame)
                 or min(position) filter (where field_reasons = '{}') over (partition by %7$I) < position)
               then array['duplicate_id'] else '{}'::text[] end as reasons
        from verdict v
    ), rejected as (
      -- (cardinality(): the planner then expects few rejects and hashes them, not sorting the input)
      insert into data.ingest_rejects (batch_id, table_name, position, payload, reasons)
      select $1, %12$L, j.position, coalesce(i.payload, to_jsonb(i.fields)), j.reasons from judged j join pg_temp.ingest_input i on i.position = j.position where cardinality(j.reasons) > 0
      returning 1
    ), inserted as (
      insert into data.%11$I (%13$s)
      select %13$s from judged where reasons = '{}' and not (known and same) order by %7$I
      %16$s
      returning %7$I
    )
    select (select count(*) from judged)::integer as received,
           (select count(*) from inserted)::integer as inserted,
           (select count(*) from judged where reasons = '{}' and known and same)::integer as unchanged,
           (select count(*) from rejected)::integer as rejected,
           %17$s as lost
  $sql$,
    v_shape_ok, v_shape_reasons, v_checks, v_values, v_new, v_reasons, v_table.key_field,
    v_old, v_new, v_joins, p_table, p_table, v_columns, v_fields_sql,
    -- A JSON object's fields, read in one pass (the rules need each one's type and text).
    case when p_csv then '' else format(
      'cross join lateral jsonb_to_record(case when jsonb_typeof(payload) = ''object'' then payload else ''{}'' end) as j(%s)',
      (select string_agg(format('%I jsonb', x), ', ') from unnest(v_fields) x)) end,
    case when p_concurrent then format('on conflict (%I) do nothing', v_table.key_field) else '' end,
    -- The valid new rows another batch inserted first (none without concurrency: no anti-join
    -- of a bulk load's million rows against themselves).
    case when p_concurrent then format(
      '(select coalesce(array_agg(j.position), ''{}'') from judged j
         where j.reasons = ''{}'' and not (j.known and j.same) and not exists (select from inserted i where i.%1$I = j.%1$I))',
      v_table.key_field) else '''{}''::bigint[]' end);
end $$;

-- Rows above which a bulk write (a load, a restore) sets the table's secondary indexes
-- aside and builds them again afterwards, as pg_restore does: the per-row index inserts
-- would otherwise dominate. Takes ACCESS EXCLUSIVE on the written table only, until commit;
-- a failure rolls everything back with the rest of the transaction. Foreign keys stay:
-- dropping one takes ACCESS EXCLUSIVE on the table it references too (departments, jobs),
-- which would block every reader of those for the whole load.
create or replace function internal.bulk_threshold() returns integer
language sql immutable parallel safe
return 50000;

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

-- Runs the validating statement on everything staged in ingest_input for an open batch,
-- records the counts, and empties the staging table.
create or replace function internal.run_ingest(p_batch data.ingest_batches) returns data.ingest_batches
language plpgsql volatile as $$
declare
  v_counts record;
  v_again record;
  v_aside text[] := '{}';
  v_input regclass := internal.check_own_temp('ingest_input');  -- before anything reads it
  v_rows bigint := (select count(*) from pg_temp.ingest_input);
  v_bulk boolean := v_rows > internal.bulk_threshold();
  v_statement text := internal.ingest_statement(p_batch.table_name, p_batch.format = 'csv', not v_bulk);
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
  execute v_statement into v_counts using p_batch.batch_id;
  if cardinality(v_counts.lost) > 0 then
    -- Another batch inserted some of these ids first and has committed (the insert waited
    -- for it): those rows are judged again, now that its rows are visible.
    delete from pg_temp.ingest_input where position <> all (v_counts.lost);
    execute v_statement into v_again using p_batch.batch_id;
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
  truncate pg_temp.ingest_input;
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

-- The most rows one batch may hold (ingest_batch and the API).
create or replace function internal.max_batch_rows() returns integer
language sql immutable parallel safe
return 1000;
