-- The data-dictionary rules, one function per kind of field. Each <kind>_reasons
-- takes the field's name and its JSON value (SQL null when absent) and returns
-- the reason codes that apply ('{}' when valid); <kind>_value casts a valid value.
-- Plain SQL functions so the planner inlines them into the set-based ingest.

-- Whitespace that trimming removes (space, tab, LF, CR, FF, VT).
create or replace function internal.trim_blank(p_text text) returns text
language sql immutable parallel safe
return btrim(p_text, E' \t\n\r\f\v');

create or replace function internal.is_missing(p_value jsonb) returns boolean
language sql immutable parallel safe
return p_value is null
    or jsonb_typeof(p_value) = 'null'
    or (jsonb_typeof(p_value) = 'string' and internal.trim_blank(p_value #>> '{}') = '');

-- Ids: a JSON integer, or a string of decimal digits, within 1..2147483647.
create or replace function internal.id_reasons(p_field text, p_value jsonb) returns text[]
language sql immutable parallel safe
return case
  when internal.is_missing(p_value) then array['missing:' || p_field]
  when (jsonb_typeof(p_value) = 'number' and p_value::text ~ '^-?[0-9]+$')
    or (jsonb_typeof(p_value) = 'string' and internal.trim_blank(p_value #>> '{}') ~ '^[0-9]+$')
    then case when internal.trim_blank(p_value #>> '{}')::numeric between 1 and 2147483647
              then '{}'::text[] else array['out_of_range:' || p_field] end
  else array['not_integer:' || p_field]
end;

create or replace function internal.id_value(p_value jsonb) returns integer
language sql immutable parallel safe
return internal.trim_blank(p_value #>> '{}')::integer;

-- Names: a JSON string of 1..p_max_length characters after trimming, without control characters.
create or replace function internal.name_reasons(p_field text, p_value jsonb, p_max_length integer) returns text[]
language sql immutable parallel safe
return case
  when internal.is_missing(p_value) then array['missing:' || p_field]
  when jsonb_typeof(p_value) <> 'string' then array['bad_text:' || p_field]
  else array_remove(array[
    case when char_length(internal.trim_blank(p_value #>> '{}')) > p_max_length then 'too_long:' || p_field end,
    case when internal.trim_blank(p_value #>> '{}') ~ '[\x01-\x1f\x7f-\x9f]' then 'bad_text:' || p_field end
  ], null)
end;

create or replace function internal.name_value(p_value jsonb) returns text
language sql immutable parallel safe
return internal.trim_blank(p_value #>> '{}');

-- An RFC 3339 date-time: seconds and an explicit offset required, and a real
-- calendar instant (no 30 February, no hour 24, no leap second).
create or replace function internal.is_rfc3339(p_text text) returns boolean
language sql immutable parallel safe
return case
  when p_text !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$' then false
  else substr(p_text, 1, 4)::integer >= 1
   and substr(p_text, 6, 2)::integer between 1 and 12
   and substr(p_text, 9, 2)::integer between 1 and
       case substr(p_text, 6, 2)::integer
         when 2 then case when (substr(p_text, 1, 4)::integer % 4 = 0 and substr(p_text, 1, 4)::integer % 100 <> 0)
                            or substr(p_text, 1, 4)::integer % 400 = 0 then 29 else 28 end
         when 4 then 30 when 6 then 30 when 9 then 30 when 11 then 30
         else 31 end
   and substr(p_text, 12, 2)::integer <= 23
   and substr(p_text, 15, 2)::integer <= 59
   and substr(p_text, 18, 2)::integer <= 59
   and (upper(right(p_text, 1)) = 'Z'
        or (substr(right(p_text, 6), 2, 2)::integer <= 23 and right(p_text, 2)::integer <= 59))
end;

create or replace function internal.datetime_reasons(p_field text, p_value jsonb) returns text[]
language sql immutable parallel safe
return case
  when internal.is_missing(p_value) then array['missing:' || p_field]
  when jsonb_typeof(p_value) <> 'string' or not internal.is_rfc3339(internal.trim_blank(p_value #>> '{}'))
    then array['bad_datetime:' || p_field]
  else '{}'::text[]
end;

-- The offset is always explicit, so the session's TimeZone never changes the instant.
create or replace function internal.datetime_value(p_value jsonb) returns timestamptz
language sql stable parallel safe
return upper(internal.trim_blank(p_value #>> '{}'))::timestamptz;
