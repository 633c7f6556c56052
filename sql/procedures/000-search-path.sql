-- Makes the tables, the ingest log and ingest_batch usable unqualified from psql
-- (new sessions pick it up). Needs ownership of the database.
do $$
begin
  execute format('alter database %I set search_path = public, data, api, report', current_database());
end $$;
