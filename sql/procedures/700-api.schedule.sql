-- What the scheduled jobs call (scripts/schedule.mjs installs them with pg_cron), and the
-- backup request queue the runner works through. Raises IBTAB for an unknown table.

-- Queues a backup of one table, or of every table when p_table is null, and wakes the
-- runners (LISTEN hirebase_backup_requests). Returns the request ids, in load order.
-- A table has at most one waiting request: a repeat returns it, so that a caller looping over
-- this cannot queue backups until the disk is full. A request a runner is performing (its
-- claim holds the row: SKIP LOCKED passes it) is not waiting: the backup may have started
-- before the caller's last change, so another one is queued.
create or replace function api.request_backup(p_table text default null, p_requested_by text default 'sql') returns bigint[]
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_ids bigint[] := '{}';
  v_id bigint;
  v_table text;
begin
  if p_table is not null then perform internal.check_table(p_table); end if;
  for v_table in select table_name from data.dictionary_tables where p_table is null or table_name = p_table order by load_order loop
    -- Looked up in a subtransaction rolled back at once, so that the lock is not the caller's
    -- to keep: a caller that stayed in its transaction (BEGIN; SELECT api.request_backup(...))
    -- made every runner's claim pass the waiting request, and every later request return it.
    v_id := null;
    begin
      select q.request_id into v_id from data.backup_requests q
       where q.table_name = v_table and q.finished_at is null
       order by q.request_id limit 1
         for key share skip locked;
      raise exception 'look-up done: lock released' using errcode = 'IBPEK';
    exception when sqlstate 'IBPEK' then
      null;  -- v_id survives
    end;
    if v_id is null then
      insert into data.backup_requests (table_name, requested_by) values (v_table, p_requested_by) returning request_id into v_id;
    end if;
    v_ids := v_ids || v_id;
  end loop;
  perform pg_notify('hirebase_backup_requests', array_to_string(v_ids, ','));
  return v_ids;
end $$;

drop function if exists api.claim_backup_request(text);
drop function if exists api.finish_backup_request(bigint, text, bigint, bigint, text, text);

-- Takes the oldest pending request and keeps it locked until the caller's transaction
-- ends: two runners never take the same one, and a runner that dies gives it back.
create or replace function runner.claim_backup_request(p_worker text) returns setof data.backup_requests
language plpgsql volatile set search_path = pg_catalog, pg_temp as $$
begin
  return query
  update data.backup_requests r
     set started_at = clock_timestamp(), worker = p_worker
   where r.request_id = (select q.request_id from data.backup_requests q
                          where q.finished_at is null
                          order by q.request_id
                          for update skip locked
                          limit 1)
  returning r.*;
end $$;

create or replace function runner.finish_backup_request(p_request_id bigint, p_file text, p_rows bigint, p_bytes bigint, p_sha256 text, p_error text)
returns void
language sql volatile set search_path = pg_catalog, pg_temp as $$
  update data.backup_requests
     set finished_at = clock_timestamp(), file = p_file, rows = p_rows, bytes = p_bytes, sha256 = p_sha256, error = p_error
   where request_id = p_request_id
$$;

-- The reports read data.hire_counts and data.hires_by_department, which triggers
-- keep exact. This recounts both from employees anyway (a safety net after, say, a trigger
-- disabled by hand), under the employees lock. Returns how many counts it corrected.
create or replace function api.refresh_reports() returns integer
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_quarters integer;
  v_departments integer;
begin
  perform internal.lock_table('employees');
  create temp table quarters_now on commit drop as
  select h.year, e.department_id, e.job_id,
         count(*) filter (where h.quarter = 1)::integer as q1,
         count(*) filter (where h.quarter = 2)::integer as q2,
         count(*) filter (where h.quarter = 3)::integer as q3,
         count(*) filter (where h.quarter = 4)::integer as q4
    from data.employees e cross join lateral internal.hiring_quarter(e.hiring_date) h group by 1, 2, 3;
  with wrong as (
    select coalesce(n.year, h.year) as year, coalesce(n.department_id, h.department_id) as department_id, coalesce(n.job_id, h.job_id) as job_id,
           coalesce(n.q1, 0) as q1, coalesce(n.q2, 0) as q2, coalesce(n.q3, 0) as q3, coalesce(n.q4, 0) as q4
      from pg_temp.quarters_now n
      full join data.hire_counts h using (year, department_id, job_id)
     where (coalesce(n.q1, 0), coalesce(n.q2, 0), coalesce(n.q3, 0), coalesce(n.q4, 0)) is distinct from (coalesce(h.q1, 0), coalesce(h.q2, 0), coalesce(h.q3, 0), coalesce(h.q4, 0))
  ), fixed as (
    insert into data.hire_counts as h (year, department_id, job_id, q1, q2, q3, q4)
    select * from wrong
    on conflict (year, department_id, job_id) do update set q1 = excluded.q1, q2 = excluded.q2, q3 = excluded.q3, q4 = excluded.q4
    returning 1
  )
  select count(*) into v_quarters from fixed;
  with now_by_department as (
    select year, department_id, sum(q1 + q2 + q3 + q4)::integer as hires from pg_temp.quarters_now group by 1, 2
  ), wrong as (
    select coalesce(n.year, h.year) as year, coalesce(n.department_id, h.department_id) as department_id, coalesce(n.hires, 0) as hires
      from now_by_department n
      full join data.hires_by_department h using (year, department_id)
     where coalesce(n.hires, 0) <> coalesce(h.hires, 0)
  ), fixed as (
    insert into data.hires_by_department as h (year, department_id, hires)
    select * from wrong
    on conflict (year, department_id) do update set hires = excluded.hires
    returning 1
  )
  select count(*) into v_departments from fixed;
  drop table pg_temp.quarters_now;
  return v_quarters + v_departments;
end $$;

-- Deletes what has outlived p_retention: ingest batches (with their rejects), finished
-- backup requests, pg_cron's run history of this database's jobs (it otherwise grows without
-- bound), and idempotency keys older than p_key_retention (at least a day). Returns what it
-- deleted.
-- The owner's (pg_cron runs it as the owner): the API role may not execute it (900-grants).
create or replace function api.housekeeping(p_retention interval default '90 days', p_key_retention interval default '7 days') returns jsonb
language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_batches integer; v_requests integer; v_keys integer; v_runs integer := 0;
begin
  if p_retention < interval '1 day' or p_key_retention < interval '1 day' then
    raise exception 'retentions must be at least 1 day' using errcode = '22023';
  end if;
  delete from data.ingest_batches where coalesce(finished_at, started_at) < now() - p_retention;
  get diagnostics v_batches = row_count;
  delete from data.backup_requests where finished_at < now() - p_retention;
  get diagnostics v_requests = row_count;
  delete from data.idempotency_keys where created_at < now() - p_key_retention;
  get diagnostics v_keys = row_count;
  -- Only the run history of this database's own jobs: other databases' history is theirs.
  if to_regclass('cron.job_run_details') is not null then
    execute $q$delete from cron.job_run_details d where d.end_time < now() - $1
                 and d.jobid in (select j.jobid from cron.job j where j.database = current_database() and j.jobname like 'hirebase\_%')$q$
      using p_retention;
    get diagnostics v_runs = row_count;
  end if;
  return jsonb_build_object('ingest_batches', v_batches, 'backup_requests', v_requests, 'idempotency_keys', v_keys, 'cron_runs', v_runs);
end $$;

-- GET /schedule: this database's pg_cron jobs with their last run, and recent backup requests.
create or replace function api.schedule_status() returns jsonb
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_jobs jsonb := '[]';
begin
  if to_regclass('cron.job') is not null then
    execute $q$
      select coalesce(jsonb_agg(jsonb_build_object(
               'job', j.jobname, 'schedule', j.schedule, 'command', j.command, 'active', j.active,
               'last_run', (select jsonb_build_object('status', d.status, 'started_at', d.start_time, 'finished_at', d.end_time, 'message', d.return_message)
                              from cron.job_run_details d where d.jobid = j.jobid order by d.runid desc limit 1))
             order by j.jobname), '[]')
        from cron.job j where j.database = current_database() and j.jobname like 'hirebase\_%'$q$
      into v_jobs;
  end if;
  return jsonb_build_object(
    'pg_cron', to_regclass('cron.job') is not null,
    'time_zone', coalesce(current_setting('cron.timezone', true), 'GMT'),
    'jobs', v_jobs,
    'backup_requests', (select coalesce(jsonb_agg(to_jsonb(r) order by r.request_id desc), '[]')
                          from (select * from data.backup_requests order by request_id desc limit 20) r));
end $$;
