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

-- The tables a table references (departments and jobs for employees), shared, in load
-- order: a write to a table never interleaves with a restore of a table it references, which
-- could delete a parent between a batch's reference check and its insert. Every taker of
-- these locks goes in load order, so they cannot deadlock.
create or replace function internal.share_parents(p_table text) returns void
language plpgsql volatile as $$
declare
  r record;
begin
  for r in select distinct t.table_name, t.load_order from data.dictionary_fields f join data.dictionary_tables t on t.table_name = f.ref_table
            where f.table_name = p_table and f.ref_table <> p_table order by t.load_order loop
    perform pg_advisory_xact_lock_shared(hashtext('hirebase.table'), hashtext(r.table_name));
  end loop;
end $$;

-- Ingest, backup and restore of one table never interleave: all take this lock (after the
-- shared locks on the tables it references).
create or replace function internal.lock_table(p_table text) returns void
language plpgsql volatile as $$
begin
  perform internal.share_parents(p_table);
  perform pg_advisory_xact_lock(hashtext('hirebase.table'), hashtext(p_table));
end $$;

-- The same lock, shared: batches of a table run side by side (they insert with ON CONFLICT
-- and judge again the rows another batch inserted first), but never beside a backup, a
-- restore or a bulk load, which take it exclusively.
create or replace function internal.share_table(p_table text) returns void
language plpgsql volatile as $$
begin
  perform internal.share_parents(p_table);
  perform pg_advisory_xact_lock_shared(hashtext('hirebase.table'), hashtext(p_table));
end $$;
