-- What the REST API calls for rows: one function per route, each returning the response body
-- as jsonb. All run as their owner (security definer) so the API's role needs no table rights.
-- Ingest (POST rows), reading rows, the data dictionary, and the paged routes' page sizes; the
-- ingest log's routes are in 410-api.ingest_log.sql.
-- Raises IBTAB unknown table, IBKEY idempotency key reused, P0002 not found.

-- The page sizes of the paged routes, their default and their most: the one home of these
-- numbers (GET /data-dictionary serves them, and the API's schemas are built from them).
create or replace function internal.page_sizes() returns jsonb
language sql immutable parallel safe
return jsonb_build_object(
  'rows', jsonb_build_object('default', 100, 'max', internal.max_batch_rows()),
  'batches', jsonb_build_object('default', 100, 'max', 1000),
  'rejects', jsonb_build_object('default', 1000, 'max', 10000));

-- A page size as asked for (p_limit), or the page's default when not given, within 1 and its
-- most: the one clamp every paged route uses. p_page: rows, batches or rejects.
drop function if exists internal.page_limit(integer, integer, integer);
create or replace function internal.page_limit(p_limit integer, p_page text) returns integer
language sql immutable parallel safe
return least(greatest(coalesce(p_limit, (internal.page_sizes() -> p_page ->> 'default')::integer), 1),
             (internal.page_sizes() -> p_page ->> 'max')::integer);

-- A refused request still goes into the ingest log, with its error and no rows. The message
-- is cut at 1000 characters (saying so): a CSV parse error comes from the caller (p_parse_error),
-- which in psql can be any text, and the log's caps count batches, not bytes.
create or replace function internal.refuse_request(p_table text, p_source text, p_format text, p_code text, p_message text, p_received integer)
returns jsonb
language sql volatile as $$
  insert into data.ingest_batches (table_name, source, format, received, error_code, error_message, finished_at)
  select p_table, p_source, p_format, p_received, p_code, m.message, clock_timestamp()
    from (select case when length(p_message) > 1000 then left(p_message, 1000) || format('... (%s characters)', length(p_message))
                      else p_message end as message) m
  returning jsonb_build_object('batch_id', batch_id, 'error', jsonb_build_object('code', p_code, 'message', error_message))
$$;

-- The API's answer for an ingested batch: the counts and every reject.
create or replace function internal.batch_response(p_batch data.ingest_batches) returns jsonb
language sql stable as $$
  select jsonb_build_object(
    'batch_id', p_batch.batch_id, 'table', p_batch.table_name, 'received', p_batch.received,
    'inserted', p_batch.inserted, 'unchanged', p_batch.unchanged, 'rejected', p_batch.rejected,
    'rejects', coalesce((select jsonb_agg(jsonb_build_object('position', r.position, 'row', r.payload, 'reasons', r.reasons) order by r.position)
                           from data.ingest_rejects r where r.batch_id = p_batch.batch_id), '[]'::jsonb))
$$;

-- POST /tables/{table}/rows. p_body: the request body as JSON text (p_format 'json') or
-- the parsed CSV records as a JSON array of arrays ('csv'); p_parse_error: why the CSV
-- could not be parsed. A dry run checks every constraint, then rolls back.
create or replace function api.ingest_request(
  p_table text,
  p_body text,
  p_format text default 'json',
  p_dry_run boolean default false,
  p_idempotency_key text default null,
  p_parse_error text default null,
  p_source text default 'api'
) returns jsonb
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_problem record;
  v_hash text;
  v_seen data.idempotency_keys;
  v_batch data.ingest_batches;
  v_response jsonb;
begin
  perform internal.check_table(p_table);
  if p_format not in ('json', 'csv') then
    raise exception 'unknown format "%"', p_format using errcode = '22023', hint = 'use json or csv';
  end if;

  if p_idempotency_key is not null and not p_dry_run then
    v_hash := md5(concat_ws(E'\x1f', p_table, p_format, p_body, p_parse_error));
    perform pg_advisory_xact_lock(hashtext('hirebase.idempotency'), hashtext(p_idempotency_key));
    select * into v_seen from data.idempotency_keys where idempotency_key = p_idempotency_key;
    if found then
      if v_seen.request_hash <> v_hash then
        raise exception 'Idempotency-Key "%" was already used for a different request', p_idempotency_key
          using errcode = 'IBKEY', hint = 'use a new key for a new request';
      end if;
      return v_seen.response || '{"replayed": true}';
    end if;
  end if;

  if p_parse_error is not null then
    select 'malformed_csv' as code, p_parse_error as message, 0 as received into v_problem;
  else
    select * into v_problem from internal.stage_json_batch(p_body, p_format);
  end if;
  if found then
    if p_dry_run then  -- a dry run writes nothing, not even its refusal
      return jsonb_build_object('batch_id', null, 'dry_run', true, 'error', jsonb_build_object('code', v_problem.code, 'message', v_problem.message));
    end if;
    v_response := internal.refuse_request(p_table, p_source, p_format, v_problem.code, v_problem.message, v_problem.received);
  elsif p_dry_run then
    begin
      v_batch := api.ingest_staged(p_table, p_source, p_format = 'csv');
      -- A statement of its own: batch_response is stable and must see the rejects just written.
      v_response := internal.batch_response(v_batch) || '{"batch_id": null, "dry_run": true}';
      raise exception 'dry run: rolled back' using errcode = 'IBDRY';
    exception when sqlstate 'IBDRY' then
      null;  -- everything the dry run wrote is rolled back; v_response survives
    end;
    return v_response;
  else
    v_batch := api.ingest_staged(p_table, p_source, p_format = 'csv');
    v_response := internal.batch_response(v_batch);
  end if;

  if v_hash is not null then
    insert into data.idempotency_keys (idempotency_key, request_hash, response) values (p_idempotency_key, v_hash, v_response);
  end if;
  return v_response;
end $$;

-- A table's rows as JSON (json, not jsonb, to keep the fields in table order),
-- hiring_date as RFC 3339 in UTC, with its fraction when it has one. $1: id or after_id, $2: limit.
create or replace function internal.rows_statement(p_table text, p_one boolean) returns text
language plpgsql stable as $$
declare
  v_table data.dictionary_tables := internal.check_table(p_table);
  v_object text;
begin
  select 'json_build_object(' || string_agg(format('%L, %s', field,
           case when kind = 'datetime' then format('internal.rfc3339(%I)', field)
                else quote_ident(field) end), ', ' order by ordinal) || ')'
    into v_object from data.dictionary_fields where table_name = p_table;
  if p_one then
    return format('select %s from data.%I where %I = $1', v_object, p_table, v_table.key_field);
  end if;
  return format('select coalesce(json_agg(r order by k), ''[]''::json) from (select %s as r, %I as k from data.%I where %I > $1 order by %I limit $2) t',
                v_object, v_table.key_field, p_table, v_table.key_field, v_table.key_field);
end $$;

-- GET /tables/{table}/rows/{id}
create or replace function api.get_row(p_table text, p_id integer) returns json
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_row json;
begin
  execute internal.rows_statement(p_table, true) into v_row using p_id;
  if v_row is null then
    raise exception 'no row with id % in %', p_id, p_table using errcode = 'P0002';
  end if;
  return v_row;
end $$;

-- GET /tables/{table}/rows?after_id=&limit= (keyset paging by id)
create or replace function api.list_rows(p_table text, p_after_id integer default 0, p_limit integer default null) returns json
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_rows json;
  v_table data.dictionary_tables := internal.check_table(p_table);
  v_limit integer := internal.page_limit(p_limit, 'rows');
begin
  execute internal.rows_statement(p_table, false) into v_rows using coalesce(p_after_id, 0), v_limit;
  -- A full page may have more after it; a short one is the last.
  return json_build_object('rows', v_rows,
    'next_after_id', case when json_array_length(v_rows) = v_limit then v_rows -> -1 -> v_table.key_field end);
end $$;

-- GET /data-dictionary: the rules as data, types read from the tables themselves.
create or replace function api.data_dictionary() returns jsonb
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select jsonb_build_object(
    'batch', jsonb_build_object('min_rows', 1, 'max_rows', internal.max_batch_rows()),
    'pages', internal.page_sizes(),
    'tables', (select jsonb_agg(jsonb_build_object(
        'table', t.table_name, 'key', t.key_field, 'load_order', t.load_order,
        'fields', (select jsonb_agg(jsonb_build_object(
            'field', f.field, 'csv_column', f.ordinal, 'kind', f.kind,
            'type', f.type, 'required', f.required,
            'max_length', f.max_length, 'references', f.ref_table, 'description', f.description,
            'range', case when f.kind = 'id' then jsonb_build_array(1, internal.max_id()) end,
            'format', case when f.kind = 'datetime' then 'RFC 3339 date-time with seconds and an offset, e.g. 2021-07-27T16:02:08Z' end)
            order by f.ordinal)
          from internal.table_columns f
         where f.table_name = t.table_name)) order by t.load_order)
      from data.dictionary_tables t),
    'reason_codes', (select jsonb_agg(jsonb_build_object('code', code, 'description', description) order by code) from data.reason_codes))
$$;
