-- The ingest engine, part 1 of 4: which tables exist, and the locks every writer takes.
-- (2: staging, 3: the per-table functions compiled from the data dictionary, 4: the entry points.)
-- Raises IBTAB for an unknown table.

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

-- Ingest, backup and restore of one table never interleave: all take the table's lock,
-- exclusively (p_shared false) or shared: batches of a table run side by side (they insert
-- with ON CONFLICT and judge again the rows another batch inserted first), but never beside a
-- backup, a restore or a bulk load, which take it exclusively. First, the tables it references
-- (departments and jobs for employees), shared, in load order: a write to a table never
-- interleaves with a restore of a table it references, which could delete a parent between a
-- batch's reference check and its insert. Every taker of these locks goes in load order, so
-- they cannot deadlock.
drop function if exists internal.share_parents(text);
create or replace function internal.take_table_lock(p_table text, p_shared boolean) returns void
language plpgsql volatile as $$
declare
  r record;
begin
  for r in select distinct t.table_name, t.load_order from data.dictionary_fields f join data.dictionary_tables t on t.table_name = f.ref_table
            where f.table_name = p_table and f.ref_table <> p_table order by t.load_order loop
    perform pg_advisory_xact_lock_shared(hashtext('hirebase.table'), hashtext(r.table_name));
  end loop;
  if p_shared then
    perform pg_advisory_xact_lock_shared(hashtext('hirebase.table'), hashtext(p_table));
  else
    perform pg_advisory_xact_lock(hashtext('hirebase.table'), hashtext(p_table));
  end if;
end $$;

-- The two ways to take it, by name.
create or replace function internal.lock_table(p_table text) returns void
language sql volatile as $$ select internal.take_table_lock(p_table, false) $$;
create or replace function internal.share_table(p_table text) returns void
language sql volatile as $$ select internal.take_table_lock(p_table, true) $$;
