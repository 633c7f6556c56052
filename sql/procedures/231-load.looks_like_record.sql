-- The other side of runner.looks_like_header: with load.mjs --header, the first line is skipped,
-- so a file without a header would silently lose its first row. A first record whose first
-- field is a whole number (an id) is data, not a header: load.mjs refuses the file.
-- runner.looks_like_record(table, fields). Raises nothing; null fields are no record.
create or replace function runner.looks_like_record(p_table text, p_fields text[]) returns boolean
language sql stable strict set search_path = pg_catalog, pg_temp as $$
  select coalesce(p_fields[1], '') ~ '^\s*[0-9]+\s*$'
$$;
