-- Backup and restore support. The runner streams Avro files; the database says what a backup
-- reads, and stages, checks and swaps the rows of a restore. Restored rows meet every
-- constraint (types, NOT NULL, primary and foreign keys) and the ingest rules: a file may have
-- been made by anyone who can write in the backup folder.
-- Raises IBTAB unknown table, IBORP restore would orphan rows, 23505 an id twice in a backup,
-- 23503 a backup row that references nothing, 22023 a row the ingest rules refuse.

-- (api.check_table and runner.lock_table are in 220-tables.sql; the runner's plumbing of
-- this file and of 700 lives in the schema runner, which only the owner may use.)
drop function if exists api.lock_table(text);
drop function if exists api.open_restore_stage(text);
drop function if exists api.restore_apply(text[], boolean);

-- Refuses a value of a backup file (22007: the restore reports it as bad_backup_value).
-- (stable, not immutable: the planner would call it on a constant argument in a branch not taken)
create or replace function internal.refuse_datetime(p_value text) returns timestamptz
language plpgsql stable as $$
begin
  raise exception 'the date-time "%" in the backup is not an RFC 3339 instant in years 0001-9999', p_value
    using errcode = '22007';
end $$;

-- A date-time as staged from Avro: microseconds since the epoch, or an RFC 3339 string
-- (which always has a colon, where a number never does: cheaper to test than a pattern),
-- read as the ingest rule reads it (offsets to +-23:59). Anything else, and instants outside
-- the years the rule allows, are refused: reads could not write them back in RFC 3339.
create or replace function internal.avro_datetime_ok(p_value text) returns boolean
language sql stable parallel safe
return case
  when strpos(p_value, ':') > 0 then internal.datetime_reasons('', 'string', p_value) = '{}'
  else p_value::bigint between -62135596800000000 and 253402300799999999
end;

-- (restore_apply checks every row with avro_datetime_ok first, naming the row; the refusal
-- here is the last line of defence)
create or replace function internal.timestamptz_from_avro(p_value text) returns timestamptz
language sql stable parallel safe
return case
  when not internal.avro_datetime_ok(p_value) then internal.refuse_datetime(p_value)
  when strpos(p_value, ':') > 0 then internal.datetime_value(p_value)
  else timestamptz 'epoch' + (p_value::bigint / 1000000) * interval '1 second' + (p_value::bigint % 1000000) * interval '1 microsecond'
end;

-- Its inverse, for backups: an instant as exact microseconds since the epoch (Avro's
-- timestamp-micros), as text (past 2^53 a JavaScript number would round it).
create or replace function internal.timestamptz_to_avro(p_value timestamptz) returns text
language sql stable parallel safe
return (extract(epoch from p_value) * 1000000)::bigint::text;

-- What a backup of p_table reads: its row count, and the statement the runner's cursor runs
-- (every column in table order, date-times as microseconds since the epoch, in key order).
create or replace function runner.backup_source(p_table text, out rows bigint, out statement text)
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
declare
  v_table data.dictionary_tables := internal.check_table(p_table);
begin
  select format('select %s from data.%I order by %I',
                string_agg(case when c.kind = 'datetime' then format('internal.timestamptz_to_avro(%1$I) as %1$I', c.field)
                                else quote_ident(c.field) end, ', ' order by c.position),
                p_table, v_table.key_field)
    into statement from internal.table_columns c where c.table_name = p_table;
  execute format('select count(*) from data.%I', p_table) into rows;
end $$;

-- Creates (or empties) the session's staging table restore_<table>, which the runner COPYs
-- into: ids as bigint (any Avro long: restore_apply checks the range, naming the row), the
-- rest as text.
create or replace function runner.open_restore_stage(p_table text) returns void
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
declare
  v_stage text := 'restore_' || (internal.check_table(p_table)).table_name;
begin
  execute format('drop table if exists pg_temp.%I cascade', v_stage);  -- and the typed view over it
  execute format('create temp table %I (%s) on commit drop', v_stage,
    (select string_agg(format('%I %s', field, case kind when 'id' then 'bigint' else 'text' end), ', ' order by ordinal)
       from data.dictionary_fields where table_name = p_table));
end $$;

-- Checks the staged tables and, unless p_dry_run, makes each table's contents equal to its
-- stage: new rows inserted, changed rows updated, missing rows deleted (parents before
-- children on the way in, children before parents on the way out). Returns per table:
-- rows_before, rows_after, added, changed, removed.
create or replace function runner.restore_apply(p_tables text[], p_dry_run boolean default false) returns jsonb
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
declare
  t record;
  f record;
  v_typed text;
  v_cols text;
  v_unconverted text;  -- a condition that converts every date-time of a row
  v_n bigint;
  v_key text;
  v_result jsonb := '{}';
  v_stats jsonb;
  v_aside text[] := '{}';  -- what a bulk restore set aside, to put back at the end
begin
  -- A file may come from anywhere (whoever can write in the backup folder, another tool): its
  -- ids and names meet the ingest rules, and names are stored trimmed as ingest stores them,
  -- or nothing is restored (the tables have no CHECK for these); date-times are RFC 3339 (or
  -- microseconds) in years 0001-9999. One scan per table; the reasons only for the example,
  -- which names the row and the field.
  for t in select d.* from data.dictionary_tables d where d.table_name = any(p_tables) order by d.load_order loop
    select string_agg(case kind when 'id' then format('coalesce(internal.id_valid(s.%I), false)', field)
             when 'datetime' then format('coalesce(internal.avro_datetime_ok(s.%I), false)', field)
             else format('coalesce(s.%1$I <> '''' and s.%1$I = internal.trim_blank(s.%1$I) and internal.name_ok(s.%1$I, %2$s), false)', field, max_length) end, ' and '),
           string_agg(case kind when 'id' then format('internal.id_reasons(%1$L, case when s.%2$I is null then ''null'' else ''number'' end, s.%2$I::text)', field, field)
             when 'datetime' then format('case when coalesce(internal.avro_datetime_ok(s.%1$I), false) then ''{}''::text[] else array[%2$L || coalesce(s.%1$I, ''null'') || %3$L] end',
                                         field, 'bad_datetime:' || field || ': the date-time "', '" in the backup is not an RFC 3339 instant in years 0001-9999')
             else format('internal.name_reasons(%1$L, case when s.%2$I is null then ''null'' else ''string'' end, internal.trim_blank(s.%2$I), %3$s)'
                         || ' || case when s.%2$I <> internal.trim_blank(s.%2$I) then array[%4$L] else ''{}'' end', field, field, max_length, field || ' not trimmed') end, ' || ')
      into v_typed, v_cols from data.dictionary_fields where table_name = t.table_name;
    continue when v_typed is null;
    execute format('select count(*), (array_agg(array_to_string(%1$s, '', '') || '' (id '' || coalesce(s.%2$I::text, ''null'') || '')'' order by s.%2$I))[1]
                      from pg_temp.%3$I s where not (%4$s)', v_cols, t.key_field, 'restore_' || t.table_name, v_typed) into v_n, v_key;
    if v_n > 0 then
      raise exception 'the backup of % has % rows the ingest rules refuse, for example %', t.table_name, v_n, v_key
        using errcode = '22023', hint = 'a backup this toolkit wrote never holds such a row: check where the file came from';
    end if;
  end loop;

  -- Rows of other tables that would point at nothing: refuse, and say how many.
  for f in select r.*, d.key_field as ref_key from data.dictionary_fields r join data.dictionary_tables d on d.table_name = r.ref_table
            where r.ref_table = any(p_tables) loop
    execute format('select count(*) from %1$s c where c.%2$I is not null and not exists (select from pg_temp.%3$I s where s.%4$I = c.%2$I)',
                   case when f.table_name = any(p_tables) then format('pg_temp.%I', 'restore_' || f.table_name) else format('data.%I', f.table_name) end,
                   f.field, 'restore_' || f.ref_table, f.ref_key) into v_n;
    if v_n > 0 then
      raise exception 'restoring % would orphan % % rows (their % is not in the backup)', f.ref_table, v_n, f.table_name, f.field
        using errcode = 'IBORP', hint = 'restore all tables together from their newest backups (--all), or restore ' || f.table_name || ' first';
    end if;
  end loop;

  -- Rows of the backup that would point at nothing: the real run's foreign keys would refuse
  -- them, so a dry run refuses them too, saying which.
  for f in select r.*, d.key_field as ref_key, c.key_field as own_key from data.dictionary_fields r
             join data.dictionary_tables d on d.table_name = r.ref_table join data.dictionary_tables c on c.table_name = r.table_name
            where r.table_name = any(p_tables) and r.ref_table <> r.table_name loop
    execute format('select count(*), (array_agg(s.%2$I || ''), the first in the row of id '' || s.%5$I order by s.%5$I))[1]
                      from pg_temp.%1$I s where s.%2$I is not null and not exists (select from %3$s p where p.%4$I = s.%2$I)',
                   'restore_' || f.table_name, f.field,
                   case when f.ref_table = any(p_tables) then format('pg_temp.%I', 'restore_' || f.ref_table) else format('data.%I', f.ref_table) end,
                   f.ref_key, f.own_key) into v_n, v_key;
    if v_n > 0 then
      raise exception 'the backup of % has % rows whose % is not in % (for example %', f.table_name, v_n, f.field, f.ref_table, v_key
        using errcode = '23503', hint = format('restore %s too (--all), or add the missing %s first', f.ref_table, f.ref_table);
    end if;
  end loop;

  for t in select d.* from data.dictionary_tables d where d.table_name = any(p_tables) order by d.load_order loop
    select string_agg(case kind when 'datetime' then format('internal.timestamptz_from_avro(s.%I)', field)
                                when 'id' then format('s.%I::integer', field)
                                else format('s.%I', field) end || format(' as %I', field), ', ' order by ordinal),
           string_agg(format('%I', field), ', ' order by ordinal),
           string_agg(format('%I is null', field), ' or ') filter (where kind = 'datetime')
      into v_typed, v_cols, v_unconverted from data.dictionary_fields where table_name = t.table_name;
    -- Checked and typed once per staging: the dry pass that checks a restore and the pass that
    -- applies it share the view (a view, not a copy: date-times are converted where read).
    if to_regclass(format('pg_temp.%I', 'typed_' || t.table_name)) is null then
      execute format('create temp view %I as select %s from pg_temp.%I s', 'typed_' || t.table_name, v_typed, 'restore_' || t.table_name);
      -- The file must not repeat an id: a unique index proves it (one sort, cheaper than grouping).
      begin
        execute format('create unique index on pg_temp.%I (%I)', 'restore_' || t.table_name, t.key_field);
      exception when unique_violation then
        execute format('select %1$I from pg_temp.%2$I group by %1$I having count(*) > 1 order by 1 limit 1', t.key_field, 'restore_' || t.table_name) into v_key;
        raise exception 'the backup of % has id % more than once', t.table_name, v_key using errcode = '23505';
      end;
      -- Every date-time must convert, so that a dry run finds a bad one before anything is touched.
      if v_unconverted is not null then
        execute format('select count(*) from pg_temp.%I where %s', 'typed_' || t.table_name, v_unconverted);
      end if;
    end if;
    -- Into an empty table everything is added: no need to compare.
    execute format($q$
      select case when not exists (select from data.%1$I) then
        (select jsonb_build_object('rows_before', 0, 'rows_after', n, 'added', n, 'removed', 0, 'changed', 0) from (select count(*) as n from pg_temp.%2$I) s)
      else jsonb_build_object(
        'rows_before', (select count(*) from data.%1$I),
        'rows_after', (select count(*) from pg_temp.%2$I),
        'added', (select count(*) from pg_temp.%2$I s where not exists (select from data.%1$I c where c.%3$I = s.%3$I)),
        'removed', (select count(*) from data.%1$I c where not exists (select from pg_temp.%2$I s where c.%3$I = s.%3$I)),
        'changed', (select count(*) from data.%1$I c join pg_temp.%2$I s using (%3$I) where (c.*) is distinct from (s.*))) end$q$,
      t.table_name, 'typed_' || t.table_name, t.key_field) into v_stats;
    v_result := v_result || jsonb_build_object(t.table_name, v_stats);
    if not p_dry_run then
      -- The orphan check above covered the tables referencing this one; the constraint re-added
      -- at the end covers the tables it references.
      if (v_stats ->> 'added')::bigint + (v_stats ->> 'changed')::bigint > internal.bulk_threshold() then
        v_aside := v_aside || internal.set_aside(t.table_name);
      end if;
      -- Into an empty table a plain insert does (no speculative insertion); otherwise an upsert
      -- that leaves unchanged rows alone.
      execute format('insert into data.%1$I (%2$s) select %2$s from pg_temp.%3$I s order by %4$I %5$s',
                     t.table_name, v_cols, 'typed_' || t.table_name, t.key_field,
                     case when (v_stats ->> 'rows_before')::bigint > 0 then format(
                       'on conflict (%1$I) do update set (%2$s) = row(%3$s) where (%4$I.*) is distinct from (excluded.*)', t.key_field, v_cols,
                       (select string_agg(format('excluded.%I', field), ', ' order by ordinal) from data.dictionary_fields where table_name = t.table_name),
                       t.table_name) else '' end);
    end if;
  end loop;

  if not p_dry_run then
    for t in select d.* from data.dictionary_tables d where d.table_name = any(p_tables) order by d.load_order desc loop
      continue when (v_result #>> array[t.table_name, 'removed'])::bigint = 0;
      execute format('delete from data.%1$I c where not exists (select from pg_temp.%2$I s where s.%3$I = c.%3$I)',
                     t.table_name, 'typed_' || t.table_name, t.key_field);
    end loop;
    perform internal.put_back(v_aside);
  end if;
  return v_result;
end $$;

-- A pre-restore snapshot names the server and the transaction that wrote it. The server is
-- pg_control_system's identifier (null where the function is not granted): the embedded default
-- and DATABASE_URL share BACKUP_DIR/<database>/ when their databases have the same name, and a
-- transaction id of one server says nothing about another's.
create or replace function runner.server_id() returns text
language sql stable
return case when has_function_privilege('pg_catalog.pg_control_system()', 'execute')
            then (select system_identifier::text from pg_catalog.pg_control_system()) end;

-- True when the snapshot's restore never committed here (its transaction aborted), so the file is
-- clutter; false or null to keep it: another server's snapshot (another identifier, or an id
-- this server has not reached: txid_status would raise 22023), one still running or committed,
-- or one too old to tell.
create or replace function runner.snapshot_aborted(p_xid bigint, p_server text) returns boolean
language sql volatile
return case
  when p_server is not null and p_server is distinct from runner.server_id() then false
  when p_xid >= txid_snapshot_xmax(txid_current_snapshot()) then false
  else txid_status(p_xid) = 'aborted'
end;
