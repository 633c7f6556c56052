-- The data-dictionary rules, one function per kind of field. Each <kind>_reasons takes the
-- field's name, its JSON type (jsonb_typeof; SQL null when absent) and its text trimmed of
-- blanks (internal.field_text), and returns the reason codes that apply ('{}' when valid);
-- <kind>_value casts a valid one. Plain SQL functions, so the planner inlines them into the
-- set-based ingest; the caller computes the type and text once per field.

-- (the signatures before 0.1.0 took jsonb)
drop function if exists internal.id_reasons(text, jsonb);
drop function if exists internal.id_value(jsonb);
drop function if exists internal.name_reasons(text, jsonb, integer);
drop function if exists internal.name_value(jsonb);
drop function if exists internal.datetime_reasons(text, jsonb);
drop function if exists internal.datetime_value(jsonb);
drop function if exists internal.is_missing(jsonb);

-- Trimming removes Unicode White_Space from both ends: tab, LF, vertical tab (chr(11): in an
-- E'' string \v would be the letter v), FF, CR, space, U+0085, U+00A0, U+1680, U+2000-U+200A,
-- U+2028, U+2029, U+202F, U+205F, U+3000.
create or replace function internal.trim_blank(p_text text) returns text
language sql immutable parallel safe
return btrim(p_text, E'\t\n\u000b\f\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000');

-- A field's text as the rules see it: a JSON string unquoted, a number as written, trimmed.
create or replace function internal.field_text(p_value jsonb) returns text
language sql immutable parallel safe
return internal.trim_blank(p_value #>> '{}');

create or replace function internal.is_missing(p_type text, p_text text) returns boolean
language sql immutable parallel safe
return p_type is null or p_type = 'null' or (p_type = 'string' and p_text = '');

-- The largest id (the id columns are integer): the one home of the ids' range, read by the
-- rule below and served by GET /data-dictionary. (Immutable: folded into the statements.)
create or replace function internal.max_id() returns bigint
language sql immutable parallel safe
return 2147483647;

-- Ids: a JSON integer, or a string of decimal digits, within 1..internal.max_id().
create or replace function internal.id_reasons(p_field text, p_type text, p_text text) returns text[]
language sql immutable parallel safe
return case
  when internal.is_missing(p_type, p_text) then array['missing:' || p_field]
  when (p_type = 'number' and p_text ~ '^-?[0-9]+$') or (p_type = 'string' and p_text ~ '^[0-9]+$')
    -- (more digits than the largest id without the leading zeros is out of range: no cast, so
    -- even a 200,000-digit string costs only its row)
    then case when (case when length(ltrim(p_text, '-0')) > length(internal.max_id()::text) then false
                         else p_text::bigint between 1 and internal.max_id() end)
              then '{}'::text[] else array['out_of_range:' || p_field] end
  else array['not_integer:' || p_field]
end;

-- An id that is a number already (a restore's staging column, any Avro long): the same rule, no text.
drop function if exists internal.id_valid(integer);
create or replace function internal.id_valid(p_value bigint) returns boolean
language sql immutable parallel safe
return p_value between 1 and 2147483647;

create or replace function internal.id_value(p_text text) returns integer
language sql immutable parallel safe
return p_text::integer;

-- Names: a JSON string of 1..p_max_length characters after trimming, without control
-- characters (Cc), line or paragraph separators (U+2028, U+2029), or bidi embedding, override
-- and isolate controls (U+202A-U+202E, U+2066-U+2069), which can make a name display as
-- another. NUL and bytes that are not UTF-8 never get this far (bad_encoding).
-- (name_ok: the test alone, for a trimmed name that is there; a restore checks millions.)
create or replace function internal.name_ok(p_text text, p_max_length integer) returns boolean
language sql immutable parallel safe
return char_length(p_text) <= p_max_length and p_text !~ '[\x01-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]';

create or replace function internal.name_reasons(p_field text, p_type text, p_text text, p_max_length integer) returns text[]
language sql immutable parallel safe
return case
  when internal.is_missing(p_type, p_text) then array['missing:' || p_field]
  when p_type <> 'string' then array['bad_text:' || p_field]
  when internal.name_ok(p_text, p_max_length) then '{}'::text[]
  else array_remove(array[
    case when char_length(p_text) > p_max_length then 'too_long:' || p_field end,
    case when p_text ~ '[\x01-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]' then 'bad_text:' || p_field end
  ], null)
end;

create or replace function internal.name_value(p_text text) returns text
language sql immutable parallel safe
return p_text;

-- An RFC 3339 date-time: seconds and an explicit offset required (any offset RFC 3339
-- allows, up to +-23:59), a fraction of up to 9 digits exact to the microsecond (digits past
-- the sixth must be zeros: finer ones could not be stored exactly; PostgreSQL's parser fails
-- the whole statement on a very long one), and a real calendar instant (no 30 February,
-- no hour 24, no leap second). The pattern checks every field's range; only days past the 28th
-- need the calendar (string functions cost more than the pattern, so the common case calls none).
create or replace function internal.is_rfc3339(p_text text) returns boolean
language sql immutable parallel safe
return case
  when p_text !~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6}0{0,3})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$' then false
  when left(p_text, 4) = '0000' then false
  when substr(p_text, 9, 2) collate "C" <= '28' then true
  else substr(p_text, 9, 2)::integer <=
       case substr(p_text, 6, 2)::integer
         when 2 then case when (substr(p_text, 1, 4)::integer % 4 = 0 and substr(p_text, 1, 4)::integer % 100 <> 0)
                            or substr(p_text, 1, 4)::integer % 400 = 0 then 29 else 28 end
         when 4 then 30 when 6 then 30 when 9 then 30 when 11 then 30
         else 31 end
end;

-- The instant of a date-time that passed is_rfc3339. PostgreSQL reads offsets only up to
-- +-15:59: beyond, the local time is read without its offset and the offset subtracted here
-- (the cast itself is the cheaper path, so it stays for Z and the usual offsets).
create or replace function internal.datetime_value(p_text text) returns timestamptz
language sql stable parallel safe
return case
  when right(p_text, 1) in ('Z', 'z') or substr(p_text, length(p_text) - 4, 2) collate "C" < '16' then upper(p_text)::timestamptz
  else (upper(left(p_text, -6))::timestamp
        - case when substr(p_text, -5 + length(p_text), 1) = '-' then -1 else 1 end
          * make_interval(hours => substr(p_text, length(p_text) - 4, 2)::integer, mins => substr(p_text, length(p_text) - 1, 2)::integer))
       at time zone 'UTC'
end;

-- Years 0001-9999, and the instant itself within them in UTC (reads write instants in UTC:
-- 0001-01-01T00:30:00+01:00 would be year 0000 there, which RFC 3339 readers do not agree on).
create or replace function internal.datetime_reasons(p_field text, p_type text, p_text text) returns text[]
language sql stable parallel safe
return case
  when internal.is_missing(p_type, p_text) then array['missing:' || p_field]
  when p_type <> 'string' or not internal.is_rfc3339(p_text) then array['bad_datetime:' || p_field]
  when left(p_text, 4) in ('0001', '9999')
   and internal.datetime_value(p_text) not between timestamptz '0001-01-01 00:00:00Z' and timestamptz '9999-12-31 23:59:59.999999Z'
    then array['bad_datetime:' || p_field]
  else '{}'::text[]
end;

-- An instant as RFC 3339 in UTC, with its fraction when it has one: what reads return.
create or replace function internal.rfc3339(p_value timestamptz) returns text
language sql stable parallel safe
return to_char(p_value at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
       || rtrim(rtrim(to_char(p_value at time zone 'UTC', '.US'), '0'), '.') || 'Z';
