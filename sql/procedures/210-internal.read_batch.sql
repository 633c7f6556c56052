-- Reading a batch given as JSON text (psql CALL, the API's JSON and CSV bodies) into
-- ingest_input. A bad value costs its row, never the batch: when PostgreSQL cannot read the
-- whole text as jsonb (a \u0000 escape, an unpaired surrogate, a number beyond numeric's
-- range, nesting deeper than its stack), the array is split into its elements and each is
-- read alone; a row that still cannot be read is staged with a reason instead of a payload:
--   bad_encoding  NUL, bytes that are not UTF-8 (the runner sends them as \u0000), or an
--                 unpaired UTF-16 surrogate: text PostgreSQL cannot store;
--   unreadable    valid JSON that PostgreSQL cannot hold (1e200000, very deep nesting).
-- Only a text that is not a JSON array at all refuses the whole batch.

drop function if exists internal.ingest_array(text, text, text, jsonb);
drop function if exists internal.batch_problem(jsonb);

-- The errors the jsonb parser raises for valid JSON it cannot hold (see above), and for
-- invalid JSON (invalid_text_representation as well).
create or replace function internal.is_json_read_error(p_sqlstate text) returns boolean
language sql immutable parallel safe
return p_sqlstate in ('22P02', '22P05', '22003', '54001');

-- A JSON text with its \u0000 and surrogate escapes made spaces: what remains to fail in it.
create or replace function internal.blank_escapes(p_text text) returns text
language sql immutable parallel safe
return regexp_replace(p_text, '\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})', '\\u0020', 'g');

-- The elements of a JSON array, each as its text, or null when the text is not one JSON
-- array. Tokens: strings, brackets and commas, and runs of anything else; the commas at
-- depth 1 separate the elements. Only syntax is checked here: each element is parsed after.
create or replace function internal.json_array_elements_text(p_body text) returns text[]
language sql immutable parallel safe as $$
  with tokens as (
    select n, m[1] as token,
           sum(case when m[1] in ('[', '{') then 1 when m[1] in (']', '}') then -1 else 0 end) over (order by n) as depth,
           btrim(m[1], E' \t\n\r') = '' as blank
      from regexp_matches(p_body, '"(?:[^"\\]|\\.)*"|[][{},]|[^][{},"]+', 'g') with ordinality as t(m, n)
  ), bounds as (
    select min(n) filter (where not blank) as open,
           min(n) filter (where depth = 0 and not blank and n > (select min(n) from tokens where not blank)) as close
      from tokens
  ), inside as (
    select t.n, t.token, t.token = ',' and t.depth = 1 as comma,
           count(*) filter (where t.token = ',' and t.depth = 1) over (order by t.n) as element
      from tokens t, bounds b where t.n > b.open and t.n < b.close
  ), elements as (
    select element, string_agg(token, '' order by n) filter (where not comma) as text
      from inside group by element
  )
  select case
    when (select coalesce(sum(length(token)), 0) from tokens) <> length(p_body) then null  -- an unterminated string
    when (select token from tokens, bounds where n = open) is distinct from '[' then null
    when (select token from tokens, bounds where n = close) is distinct from ']' then null
    when exists (select from tokens, bounds where n > close and not blank) then null
    when not exists (select from inside) then '{}'::text[]
    when (select count(*) from elements) <> (select max(element) + 1 from inside)
      or exists (select from elements where coalesce(btrim(text, E' \t\n\r'), '') = '') then null
    else (select array_agg(text order by element) from elements)
  end
$$;

-- What makes a whole batch unusable, if anything: (sqlstate, code, message). p_type: the
-- body's JSON type ('array' when only its elements could be read), p_rows: how many.
create or replace function internal.batch_problem(p_type text, p_rows integer) returns table (sqlstate text, code text, message text)
language sql immutable as $$
  select 'IBARR', 'not_an_array', 'a batch must be a JSON array of row objects, got ' || coalesce(p_type, 'null')
   where p_type is distinct from 'array'
  union all
  select 'IBEMP', 'empty_batch', 'the batch is empty: send 1 to ' || internal.max_batch_rows() || ' rows'
   where p_type = 'array' and p_rows = 0
  union all
  select 'IBBIG', 'batch_too_large', 'the batch has ' || p_rows || ' rows: the limit is ' || internal.max_batch_rows() || ' rows per batch'
   where p_type = 'array' and p_rows > internal.max_batch_rows()
$$;

-- Stages one element (position p_position) of a batch: a row object, or in p_format 'csv' a
-- record (an array of its fields).
drop function if exists internal.stage_element(bigint, jsonb, text);
create or replace function internal.stage_element(p_position bigint, p_value jsonb, p_format text) returns void
language plpgsql volatile as $$
begin
  insert into pg_temp.ingest_input (position, payload, fields)
  select p_position,
         case when p_format <> 'csv' or jsonb_typeof(p_value) <> 'array' then p_value end,
         case when p_format = 'csv' and jsonb_typeof(p_value) = 'array' then array(select jsonb_array_elements_text(p_value)) end;
end $$;

-- Stages a batch given as JSON text into an emptied ingest_input. Returns no row when the
-- batch can be ingested, else its problem: (sqlstate, code, message, received) with code
-- not_an_array, empty_batch, batch_too_large or malformed_json (sqlstate IBJSN).
create or replace function internal.stage_json_batch(p_body text, p_format text)
returns table (sqlstate text, code text, message text, received integer)
language plpgsql volatile as $$
declare
  v_rows jsonb;
  v_elements text[];
  v_error text;
  v_type text := 'array';
  v_count integer;
  v_value jsonb;
  v_reason text;
begin
  perform api.open_ingest_input();
  begin
    v_rows := p_body::jsonb;
  exception when others then
    if not internal.is_json_read_error(sqlstate) then raise; end if;
    v_error := sqlerrm;
  end;
  if v_error is null then
    v_type := jsonb_typeof(v_rows);
    v_count := case when v_type = 'array' then jsonb_array_length(v_rows) else 0 end;
  else
    v_elements := internal.json_array_elements_text(p_body);
    if v_elements is null then
      -- Say what is wrong with its syntax, not the first thing PostgreSQL could not hold.
      begin
        perform internal.blank_escapes(p_body)::jsonb;
      exception when others then
        if not internal.is_json_read_error(sqlstate) then raise; end if;
        v_error := sqlerrm;
      end;
      return query select 'IBJSN', 'malformed_json', 'the body is not valid JSON: ' || v_error, 0;
      return;
    end if;
    v_count := cardinality(v_elements);
  end if;

  return query select p.sqlstate, p.code, p.message, v_count from internal.batch_problem(v_type, v_count) p;
  if found then return; end if;

  if v_error is null then
    -- (set-based: one statement for the whole batch)
    insert into pg_temp.ingest_input (position, payload, fields)
    select ordinality,
           case when p_format <> 'csv' or jsonb_typeof(value) <> 'array' then value end,
           case when p_format = 'csv' and jsonb_typeof(value) = 'array' then array(select jsonb_array_elements_text(value)) end
      from jsonb_array_elements(v_rows) with ordinality;
    return;
  end if;
  for i in 1 .. v_count loop
    begin
      v_value := v_elements[i]::jsonb;
      perform internal.stage_element(i, v_value, p_format);
    exception when others then
      if not internal.is_json_read_error(sqlstate) then raise; end if;
      -- Valid once its \u0000 and surrogate escapes are blanked: those were what failed.
      begin
        perform internal.blank_escapes(v_elements[i])::jsonb;
        v_reason := 'bad_encoding';
      exception when others then
        if not internal.is_json_read_error(sqlstate) then raise; end if;
        if sqlstate = '22P02' then
          truncate pg_temp.ingest_input;
          return query select 'IBJSN', 'malformed_json', format('the body is not valid JSON: element %s: %s', i, sqlerrm), v_count;
          return;
        end if;
        v_reason := 'unreadable';
      end;
      insert into pg_temp.ingest_input (position, payload, unreadable) values (i, to_jsonb(v_elements[i]), v_reason);
    end;
  end loop;
end $$;
