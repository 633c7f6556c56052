-- The ingest engine, part 2 of 4: where rows wait. Rows wait in the session's temp table
-- ingest_input: JSON rows as payload, CSV records as fields (text[], no JSON parsing on the
-- way in), a row that could not be staged as it came with its reason code (unreadable).

-- A temp table in this session that the current user (in a SECURITY DEFINER routine: the
-- owner) made itself, or 42501. The session's caller shares pg_temp and could have made an
-- object of that name first, with a trigger or a rule that would then run as the owner. Only
-- a table's owner can add triggers, rules or policies to it, or make it a view, and nobody can
-- give a table to a role he is not a member of: so a plain table owned by the current user,
-- with none of those, is one the caller cannot have touched.
create or replace function internal.check_own_temp(p_name text) returns regclass
language plpgsql stable as $$
declare
  v_table regclass := to_regclass('pg_temp.' || quote_ident(p_name));
begin
  if v_table is null or not exists (
      select from pg_class c
       where c.oid = v_table and c.relnamespace = pg_my_temp_schema() and c.relkind = 'r'
         and c.relowner = (select oid from pg_roles where rolname = current_user) and not c.relhastriggers and not c.relhasrules
         and not c.relrowsecurity and not c.relhassubclass) then
    raise exception 'the temporary table % of this session was not made by %', p_name, current_user
      using errcode = '42501', hint = 'drop your own pg_temp.' || quote_ident(p_name) || ' or start a new session';
  end if;
  return v_table;
end $$;

-- Empties the staging table (which the caller has checked). TRUNCATE would give it a new
-- file, and every cached plan that reads it (the compiled functions') would be planned again
-- at the next batch: so up to 8 MB of rows are deleted instead (the end of the transaction
-- empties it in place anyway), and only more is truncated.
create or replace function internal.empty_ingest_input() returns void
language plpgsql volatile as $$
begin
  if pg_relation_size('pg_temp.ingest_input') > 8 * 1024 * 1024 then
    truncate pg_temp.ingest_input;
  else
    delete from pg_temp.ingest_input;
  end if;
end $$;

-- Creates (once per session) or empties the staging table, which the owner makes and checks.
create or replace function api.open_ingest_input() returns void
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
begin
  if to_regclass('pg_temp.ingest_input') is null then
    -- unreadable: the reason code of a row that could not be staged as it came (bad_encoding,
    -- unreadable); its payload is then what was received, as a JSON string.
    create temp table ingest_input (position bigint not null, payload jsonb, fields text[], unreadable text) on commit delete rows;
  end if;
  perform internal.check_own_temp('ingest_input');
  perform internal.empty_ingest_input();
end $$;

-- The most rows one batch may hold (ingest_batch and the API).
create or replace function internal.max_batch_rows() returns integer
language sql immutable parallel safe
return 1000;

-- Rows above which a bulk write (a load, a restore) sets the table's secondary indexes
-- aside and builds them again afterwards, as pg_restore does: the per-row index inserts
-- would otherwise dominate. Takes ACCESS EXCLUSIVE on the written table only, until commit;
-- a failure rolls everything back with the rest of the transaction. Foreign keys stay:
-- dropping one takes ACCESS EXCLUSIVE on the table it references too (departments, jobs),
-- which would block every reader of those for the whole load.
create or replace function internal.bulk_threshold() returns integer
language sql immutable parallel safe
return 50000;
