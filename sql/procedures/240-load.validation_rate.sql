-- How fast the table's last bulk loads were validated and written, in rows per second, or null
-- without a CSV load of 10,000 rows or more: load.mjs's progress estimates from it the time left
-- of the one statement that validates, inserts and checks the references of a file.
-- runner.validation_rate(table). Raises nothing; reads the ingest log only.
create or replace function runner.validation_rate(p_table text) returns double precision
language sql stable set search_path = pg_catalog, pg_temp as $$
  select sum(b.received) / nullif(extract(epoch from sum(b.finished_at - b.started_at)), 0)
    from (select received, started_at, finished_at from data.ingest_batches
           where table_name = p_table and format = 'csv' and received >= 10000
             and finished_at is not null and error_code is null
           order by batch_id desc limit 3) b
$$;
