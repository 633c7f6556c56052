-- The ingest engine, part 3 of 4: the validating statement of each table, generated from the
-- data dictionary and compiled into one PL/pgSQL function per table and input shape:
--   internal.ingest_<table>_json  rows staged as JSON objects (payload)
--   internal.ingest_<table>_csv   rows staged as CSV records (fields, all text)
-- Each validates everything staged in pg_temp.ingest_input in one set-based statement (one
-- CTE per step), logs every reject, inserts the valid rows and returns the counts. Being
-- static SQL in PL/pgSQL, the statement is planned once per session and its plan cached.
-- They are (re)made when the definitions are applied and whenever the dictionary changes
-- (a trigger below); `\sf internal.ingest_employees_json` shows what runs.
-- Not SECURITY DEFINER, and nobody else may execute them: only the owner's entry points
-- (203-ingest.engine.sql) call them, after checking the staging table is their own.
-- Long, as one file: the generated statement is one piece of text built in one function.

-- A name as it may stand in a generated comment: a line break would end the comment and make
-- the rest of the name code (names come from the owner's dictionary, but cost nothing to tame).
create or replace function internal.comment_safe(p_text text) returns text
language sql immutable parallel safe
return translate(p_text, E'\n\r', '  ');

-- The reason codes each kind of field can get (internal.<kind>_reasons), for the comments.
create or replace function internal.kind_reason_codes(p_kind text) returns text
language sql immutable parallel safe
return case p_kind
  when 'id' then 'missing, not_integer, out_of_range'
  when 'name' then 'missing, bad_text, too_long'
  when 'datetime' then 'missing, bad_datetime'
end;

-- The validating statement for one table, as readable SQL; p_csv: the rows are CSV records
-- (fields, all text) rather than JSON objects (payload); p_concurrent: other batches may
-- insert the same new ids meanwhile (the insert then skips them, and returns their positions
-- as lost); p_stage: a parallel load's worker (204-ingest.parallel.sql): steps 1-5 only, the
-- statement returns its rejects and valid rows instead of writing them. p_batch_id is the
-- batch id. Exposed for inspection:
--   select internal.ingest_statement('employees', false);
drop function if exists internal.ingest_statement(text, boolean, boolean);
create or replace function internal.ingest_statement(p_table text, p_csv boolean, p_concurrent boolean default false,
                                                     p_stage boolean default false) returns text
language plpgsql stable as $$
declare
  v_table  data.dictionary_tables := internal.check_table(p_table);
  v_key    text := quote_ident(v_table.key_field);
  v_fields text[];
  v_count  integer;
  f        record;
  -- One line per field in each step.
  v_read text[] := '{}';  v_rules text[] := '{}';  v_values text[] := '{}';  v_reasons text[] := '{}';  v_joins text[] := '{}';
  v_columns text;  v_new text;  v_old text;  v_judged text;
begin
  select array_agg(field order by ordinal), count(*) into v_fields, v_count
    from data.dictionary_fields where table_name = p_table;

  for f in select d.*, r.key_field as ref_key
             from data.dictionary_fields d left join data.dictionary_tables r on r.table_name = d.ref_table
            where d.table_name = p_table order by d.ordinal loop
    declare
      v_name text := quote_ident(f.field);
      -- A CSV field is always a string (an absent one empty): a constant the planner folds into the rules.
      v_type text := case when p_csv then '''string''' else quote_ident('k_' || f.field) end;
      v_text text := quote_ident('t_' || f.field);
      v_rule text := quote_ident('r_' || f.field);
    begin
      -- Each field's JSON type and trimmed text, computed once (the CTEs are materialized).
      v_read := v_read || case when p_csv
        then format('internal.trim_blank(coalesce(i.fields[%s], %L)) as %s', f.ordinal, '', v_text)
        else format('jsonb_typeof(j.%1$s) as %2$s, internal.field_text(j.%1$s) as %3$s', v_name, v_type, v_text) end;
      v_rules := v_rules
        || (format('-- %s', (select string_agg(c || ':' || internal.comment_safe(f.field), ', ') from unnest(string_to_array(internal.kind_reason_codes(f.kind), ', ')) c))
            || E'\n         ' || format('case when shape_ok then %s else ''{}''::text[] end as %s', case f.kind
             when 'id' then format('internal.id_reasons(%L, %s, %s)', f.field, v_type, v_text)
             when 'name' then format('internal.name_reasons(%L, %s, %s, %s)', f.field, v_type, v_text, f.max_length)
             when 'datetime' then format('internal.datetime_reasons(%L, %s, %s)', f.field, v_type, v_text) end, v_rule));
      v_values := v_values || format('case when shape_ok and %s = ''{}'' then internal.%s_value(%s) end as %s', v_rule, f.kind, v_text, v_name);
      v_reasons := v_reasons || format('t.%s', v_rule);
      if f.ref_table is not null then
        v_joins := v_joins || format('left join data.%1$I %2$I on %2$I.%3$I = t.%4$s  -- unknown_reference:%5$s',
                                     f.ref_table, 'ref_' || f.field, f.ref_key, v_name, internal.comment_safe(f.field));
        v_reasons := v_reasons || format('case when t.%1$s is not null and %2$I.%3$I is null then array[%4$L] else ''{}''::text[] end',
                                         v_name, 'ref_' || f.field, f.ref_key, 'unknown_reference:' || f.field);
      end if;
    end;
  end loop;

  select string_agg(quote_ident(x), ', '), string_agg('t.' || quote_ident(x), ', '), string_agg('cur.' || quote_ident(x), ', '),
         string_agg('j.' || quote_ident(x), ', ')
    into v_columns, v_new, v_old, v_judged from unnest(v_fields) x;

  return concat_ws(E'\n',
'with shaped as materialized (',
'  -- Step 1, shape: ' || case when p_csv then 'bad_encoding (staged so), wrong_field_count.'
                      else 'bad_encoding, unreadable (staged so), not_an_object, unknown_field:<field>.' end,
'  -- Each field''s ' || case when p_csv then 'trimmed text' else 'JSON type and trimmed text' end || ', read once; the input stays',
'  -- behind in ingest_input: only rejects need it, joined back by position.',
'  select i.position,',
case when p_csv then format(
'         i.unreadable is null and coalesce(cardinality(i.fields), 0) = %1$s as shape_ok,
         case when i.unreadable is not null then array[i.unreadable]
              when coalesce(cardinality(i.fields), 0) = %1$s then ''{}''::text[]
              else array[''wrong_field_count''] end as shape_reasons,', v_count)
else format(
'         i.unreadable is null and jsonb_typeof(i.payload) = ''object'' as shape_ok,
         case when i.unreadable is not null then array[i.unreadable]
              when jsonb_typeof(i.payload) <> ''object'' then array[''not_an_object'']
              when (i.payload - %1$L::text[]) = ''{}''::jsonb then ''{}''::text[]
              else array(select ''unknown_field:'' || k from jsonb_object_keys(i.payload - %1$L::text[]) k order by k) end as shape_reasons,',
  v_fields) end,
'         ' || array_to_string(v_read, E',\n         '),
'    from pg_temp.ingest_input i',
case when not p_csv then format(
'    -- (a JSON object''s fields, read in one pass)
    cross join lateral jsonb_to_record(case when jsonb_typeof(i.payload) = ''object'' then i.payload else ''{}'' end)
      as j(%s)', (select string_agg(quote_ident(x) || ' jsonb', ', ') from unnest(v_fields) x)) end,
'), checked as materialized (',
'  -- Step 2, rules: each field''s reason codes, by its kind.',
'  select *,',
'         ' || array_to_string(v_rules, E',\n         '),
'    from shaped',
'), typed as (',
'  -- Step 3, values: each valid field cast to its column.',
'  select *,',
'         ' || array_to_string(v_values, E',\n         '),
'    from checked',
'), verdict as (',
'  -- Step 4, references (unknown_reference:<field>) and the rows already in the table (an',
'  -- index probe per row, LATERAL: a cached plan made while the table was small, or with the',
'  -- staging table looking large, scanned the whole table for every batch).',
'  select t.position, ' || v_new || ',',
'         t.shape_reasons',
'           || ' || array_to_string(v_reasons, E'\n           || ') || ' as field_reasons,',
format('         cur.%s is not null as known,', v_key),
format('         (%s) is not distinct from (%s) as same', v_old, v_new),
'    from typed t',
case when cardinality(v_joins) > 0 then '    ' || array_to_string(v_joins, E'\n    ') end,
format('    left join lateral (select * from data.%I c where c.%s = t.%s limit 1) cur on true', p_table, v_key, v_key),
'), repeated as (',
'  -- Step 5, duplicate_id: the ids that come more than once, with their first valid row',
'  -- (hashed on the id alone: no sort of the whole rows, no window per id) ...',
format('  select %1$s, min(position) filter (where field_reasons = ''{}'') as first_valid', v_key),
format('    from verdict where %1$s is not null group by %1$s having count(*) > 1', v_key),
'), judged as (',
'  -- ... a row is a duplicate_id when its id exists with other content, or an earlier row of',
'  -- the batch with its id is valid.',
'  select v.*, v.field_reasons || case',
'           when (v.known and not v.same) or r.first_valid < v.position',
'           then array[''duplicate_id''] else ''{}''::text[] end as reasons',
format('    from verdict v left join repeated r on r.%1$s = v.%1$s', v_key),
case when p_stage then concat_ws(E'\n',
')',
'-- Step 6 of a parallel load''s worker: the rejects with their rows as received, and the valid',
'-- rows (unchanged: in the table as they are), which runner.finish_load writes for all workers.',
'select j.position, j.reasons, coalesce(i.payload, to_jsonb(i.fields)) as payload, false as unchanged, ' || v_judged,
'  from judged j join pg_temp.ingest_input i on i.position = j.position',
' where cardinality(j.reasons) > 0',
'union all',
'select j.position, j.reasons, null, j.known and j.same, ' || v_judged,
'  from judged j',
' where j.reasons = ''{}''') else concat_ws(E'\n',
'), rejected_rows as (',
'  -- Step 6: every reject logged with every reason and its row as received (cardinality():',
'  -- the planner then expects few rejects and hashes them, not sorting the input).',
'  insert into data.ingest_rejects (batch_id, table_name, position, payload, reasons)',
format('  select p_batch_id, %L, j.position, coalesce(i.payload, to_jsonb(i.fields)), j.reasons', p_table),
'    from judged j join pg_temp.ingest_input i on i.position = j.position',
'   where cardinality(j.reasons) > 0',
'  returning 1',
'), inserted_rows as (',
'  -- Step 7: the valid rows that are new, in key order.',
format('  insert into data.%I (%s)', p_table, v_columns),
format('  select %s from judged where reasons = ''{}'' and not (known and same) order by %s', v_columns, v_key),
case when p_concurrent then format('  on conflict (%s) do nothing', v_key) end,
format('  returning %s', v_key),
')',
'select (select count(*) from judged)::integer,',
'       (select count(*) from inserted_rows)::integer,',
'       (select count(*) from judged where reasons = ''{}'' and known and same)::integer,',
'       (select count(*) from rejected_rows)::integer,',
case when p_concurrent then format(
'       -- the valid new rows another batch inserted first
       (select coalesce(array_agg(j.position), ''{}'') from judged j
         where j.reasons = ''{}'' and not (j.known and j.same)
           and not exists (select from inserted_rows i where i.%1$s = j.%1$s))', v_key)
else
'       ''{}''::bigint[]  -- (no other batch writes meanwhile: no anti-join of a million rows against themselves)' end) end);
end $$;

-- The name of a table's function for a shape (json, csv): ingest_<table>_<shape>, or, when
-- that is longer than PostgreSQL's 63-byte identifiers (which would cut both shapes' names to
-- one), ingest_<md5 of the table's name>_<shape>.
create or replace function internal.ingest_function_name(p_table text, p_shape text) returns text
language sql immutable parallel safe
return case when octet_length('ingest_' || p_table || '_' || p_shape) <= 63 then 'ingest_' || p_table || '_' || p_shape
            else 'ingest_' || md5(p_table) || '_' || p_shape end;

-- (Re)makes the table's two functions from the dictionary, or drops them when the table
-- has no fields. Each holds two statements: one for batches that run beside other batches
-- (ON CONFLICT, lost rows judged again by the caller) and one for bulk writes under the
-- table's exclusive lock.
create or replace function internal.compile_ingest(p_table text) returns void
language plpgsql volatile as $$
declare
  v_shape text;
  v_function text;
begin
  foreach v_shape in array array['json', 'csv'] loop
    v_function := format('internal.%I', internal.ingest_function_name(p_table, v_shape));
    if not exists (select from data.dictionary_fields where table_name = p_table) then
      execute format('drop function if exists %s(bigint, boolean)', v_function);
      continue;
    end if;
    -- (the body goes in as a quoted literal: no name can end it early, as one could a dollar quote)
    execute format('create or replace function %s(p_batch_id bigint, p_bulk boolean,
  out received integer, out inserted integer, out unchanged integer, out rejected integer, out lost bigint[])
language plpgsql volatile set search_path = pg_catalog, pg_temp as %L', v_function, format($f$
-- Generated from the data dictionary by internal.compile_ingest(%1$L): do not edit.
-- Validates the %2$s rows staged in pg_temp.ingest_input as batch p_batch_id of %3$s,
-- logs every reject in data.ingest_rejects, inserts the valid new rows and returns the counts.
begin
  if p_bulk then
    -- A bulk write: the caller holds the table's lock exclusively.
%4$s
    into received, inserted, unchanged, rejected, lost;
  else
    -- A batch: other batches may insert the same new ids meanwhile.
%5$s
    into received, inserted, unchanged, rejected, lost;
  end if;
end
$f$,
      internal.comment_safe(p_table), case v_shape when 'json' then 'JSON' else 'CSV' end, internal.comment_safe(p_table),
      -- (not indented: a line break inside a quoted name must stay as it is)
      internal.ingest_statement(p_table, v_shape = 'csv', false),
      internal.ingest_statement(p_table, v_shape = 'csv', true)));
    execute format('revoke all on function %s(bigint, boolean) from public', v_function);
  end loop;
end $$;

-- Every table's functions, and none for tables the dictionary no longer has.
create or replace function internal.compile_ingest_all() returns void
language plpgsql volatile as $$
declare
  r record;
begin
  for r in select p.oid::regprocedure as function from pg_proc p
            where p.pronamespace = 'internal'::regnamespace and p.proname ~ '^ingest_.+_(json|csv)$'
              and pg_get_function_identity_arguments(p.oid) = 'p_batch_id bigint, p_bulk boolean'
              and not exists (select from data.dictionary_tables t
                               where p.proname in (internal.ingest_function_name(t.table_name, 'json'), internal.ingest_function_name(t.table_name, 'csv'))) loop
    execute format('drop function %s', r.function);
  end loop;
  for r in select table_name from data.dictionary_tables order by load_order loop
    perform internal.compile_ingest(r.table_name);
  end loop;
end $$;

create or replace function internal.recompile_ingest() returns trigger
language plpgsql as $$
begin
  perform internal.compile_ingest_all();
  return null;
end $$;

-- A change to the dictionary regenerates them in the same transaction.
create or replace trigger dictionary_tables_compile after insert or update or delete or truncate on data.dictionary_tables
  for each statement execute function internal.recompile_ingest();
create or replace trigger dictionary_fields_compile after insert or update or delete or truncate on data.dictionary_fields
  for each statement execute function internal.recompile_ingest();

select internal.compile_ingest_all();
