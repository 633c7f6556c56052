-- The ingest engine, part 1 of 4: which tables exist, and the locks every writer takes.
-- (2: staging, 3: the per-table functions compiled from the data dictionary, 4: the entry points,
-- 5: the parallel load.)
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

-- The tables a table references (departments and jobs for employees), in load order (also
-- for the parallel load's session locks, 204-ingest.parallel.sql).
create or replace function internal.parent_tables(p_table text) returns setof text
language sql stable as $$
  select t.table_name from data.dictionary_tables t
   where t.table_name <> p_table and t.table_name in (select f.ref_table from data.dictionary_fields f where f.table_name = p_table)
   order by t.load_order
$$;

-- Ingest, backup and restore of one table never interleave: all take the table's lock,
-- exclusively (p_shared false) or shared: batches of a table run side by side (they insert
-- with ON CONFLICT and judge again the rows another batch inserted first), but never beside a
-- backup, a restore or a bulk load, which take it exclusively. First, the tables it references
-- (departments and jobs for employees), shared, in load order: a write to a table never
-- interleaves with a restore of a table it references, which could delete a parent between a
-- batch's reference check and its insert. Every taker of these locks goes in load order, so
-- they cannot deadlock.
drop function if exists internal.share_parents(text);
drop function if exists internal.take_table_lock(text, boolean);
-- p_session: held by the session until internal.release_table_lock (the parallel load's
-- coordinator, 204-ingest.parallel.sql), not by the transaction.
create or replace function internal.take_table_lock(p_table text, p_shared boolean, p_session boolean default false) returns void
language plpgsql volatile as $$
declare
  v_parent text;
begin
  for v_parent in select internal.parent_tables(p_table) loop
    if p_session then
      perform pg_advisory_lock_shared(hashtext('hirebase.table'), hashtext(v_parent));
    else
      perform pg_advisory_xact_lock_shared(hashtext('hirebase.table'), hashtext(v_parent));
    end if;
  end loop;
  case
    when p_session and p_shared then perform pg_advisory_lock_shared(hashtext('hirebase.table'), hashtext(p_table));
    when p_session then perform pg_advisory_lock(hashtext('hirebase.table'), hashtext(p_table));
    when p_shared then perform pg_advisory_xact_lock_shared(hashtext('hirebase.table'), hashtext(p_table));
    else perform pg_advisory_xact_lock(hashtext('hirebase.table'), hashtext(p_table));
  end case;
end $$;

-- Releases what internal.take_table_lock(p_table, false, true) took.
create or replace function internal.release_table_lock(p_table text) returns void
language plpgsql volatile as $$
declare
  v_parent text;
begin
  perform pg_advisory_unlock(hashtext('hirebase.table'), hashtext(p_table));
  for v_parent in select internal.parent_tables(p_table) loop
    perform pg_advisory_unlock_shared(hashtext('hirebase.table'), hashtext(v_parent));
  end loop;
end $$;

-- The two ways to take it, by name.
create or replace function internal.lock_table(p_table text) returns void
language sql volatile as $$ select internal.take_table_lock(p_table, false) $$;
create or replace function internal.share_table(p_table text) returns void
language sql volatile as $$ select internal.take_table_lock(p_table, true) $$;
