-- The toolkit's tables by name, as the runner and the API use them: the check of a table's
-- name (IBTAB) and its ingest lock (internal.check_table and internal.lock_table, with the
-- engine in 200-ingest.sql), the load order, and the columns. Raises IBTAB for an unknown table.

-- The table's name, or IBTAB when the data dictionary does not know it.
create or replace function api.check_table(p_table text) returns text
language sql stable security definer set search_path = pg_catalog, pg_temp
return (internal.check_table(p_table)).table_name;

-- The runner's plumbing (runner.*) lives in the schema runner, which only the owner may use:
-- the runner connects as the owner, and the functions run as their caller (no SECURITY
-- DEFINER), so none can lend the owner's rights.

-- Takes the table's ingest lock (backup, restore and ingest never interleave) until commit.
create or replace function runner.lock_table(p_table text) returns void
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
begin
  perform internal.check_table(p_table);
  perform internal.lock_table(p_table);
end $$;

-- The same lock, tried rather than waited for: false while another transaction holds the
-- table (its backup may be running), for the clean-up of the backup folder at start.
create or replace function runner.try_lock_table(p_table text) returns boolean
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
begin
  perform internal.check_table(p_table);
  return pg_try_advisory_xact_lock(hashtext('hirebase.table'), hashtext(p_table));
end $$;

-- The tables in load order (departments and jobs before employees): every table, or those of
-- p_tables (IBTAB for a name the dictionary does not know). Loads, backups and restores go in it.
create or replace function runner.load_order(p_tables text[] default null) returns setof text
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
begin
  perform internal.check_table(t) from unnest(p_tables) t;
  return query select d.table_name from data.dictionary_tables d
                where p_tables is null or d.table_name = any(p_tables) order by d.load_order;
end $$;

-- Every field of the data dictionary with its column's type as the table has it: what
-- GET /data-dictionary serves and what a backup's Avro schema is made from.
create or replace view internal.table_columns as
  select f.table_name, f.field, f.ordinal, f.kind, a.attnum as position, format_type(a.atttypid, a.atttypmod) as type,
         a.attnotnull as required, f.max_length, f.ref_table, f.description
    from data.dictionary_fields f
    join pg_attribute a on a.attrelid = format('data.%I', f.table_name)::regclass and a.attname = f.field and not a.attisdropped;

-- A table's columns in table order, with their PostgreSQL types.
create or replace function runner.table_columns(p_table text) returns table (name text, type text)
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
begin
  perform internal.check_table(p_table);
  return query select c.field, c.type from internal.table_columns c where c.table_name = p_table order by c.position;
end $$;
