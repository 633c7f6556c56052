-- The CSV files have no header: load.mjs refuses a file whose first record looks like one
-- (unless --header says to skip it). This is that rule, judged against the data dictionary:
-- runner.looks_like_header(table, fields). Raises nothing; null fields are no header.

-- A first record that names fields rather than holding data: its first field is not a
-- number, every field is a word (letters, spaces, - and _), and at least one is a field of
-- the table, a part of one's name (department, id) or a field's kind (datetime).
create or replace function runner.looks_like_header(p_table text, p_fields text[]) returns boolean
language sql stable strict set search_path = pg_catalog, pg_temp as $$
  with words as (
    select regexp_replace(lower(regexp_replace(f, '^\s+|\s+$', '', 'g')), '[\s-]+', '_', 'g') as word from unnest(p_fields) f
  ), known as (
    select k as word from data.dictionary_fields d, unnest(array[d.field, d.kind] || string_to_array(d.field, '_')) k
     where d.table_name = p_table
  )
  select coalesce(p_fields[1], '') !~ '^\s*[0-9]+\s*$'
     and coalesce((select bool_and(word ~ '^[a-z_]*$') from words), true)
     and exists (select from words join known using (word))
$$;
