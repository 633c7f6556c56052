-- 0003: hires per (UTC year, quarter, department, job), kept exact by statement-level
-- triggers on employees, in the same transaction as every ingest, load and restore, so
-- the reports read a few thousand rows instead of scanning millions of employees.

create table data.hires_by_quarter (
  year          integer not null,
  quarter       integer not null check (quarter between 1 and 4),
  department_id integer not null,
  job_id        integer not null,
  hires         integer not null,  -- no CHECK: INSERT ... ON CONFLICT checks it on the proposed delta
  primary key (year, quarter, department_id, job_id)
);

-- One aggregate per statement over its transition tables: a bulk load or a restore costs
-- one pass, not one per row. (A combination whose count falls to zero keeps a 0 row.)
create function internal.count_hires() returns trigger
language plpgsql as $$
begin
  execute format($q$
    insert into data.hires_by_quarter as h (year, quarter, department_id, job_id, hires)
    select extract(year from hiring_date at time zone 'UTC')::integer, extract(quarter from hiring_date at time zone 'UTC')::integer,
           department_id, job_id, sum(n)::integer
      from (%s) c
     group by 1, 2, 3, 4
    having sum(n) <> 0
    on conflict (year, quarter, department_id, job_id) do update set hires = h.hires + excluded.hires$q$,
    case tg_op
      when 'INSERT' then 'select hiring_date, department_id, job_id, 1 as n from new_rows'
      when 'DELETE' then 'select hiring_date, department_id, job_id, -1 as n from old_rows'
      else 'select hiring_date, department_id, job_id, -1 as n from old_rows union all select hiring_date, department_id, job_id, 1 from new_rows'
    end);
  return null;
end $$;

create function internal.clear_hires() returns trigger
language plpgsql as $$
begin
  delete from data.hires_by_quarter;
  return null;
end $$;

create trigger employees_count_hires_insert after insert on data.employees
  referencing new table as new_rows for each statement execute function internal.count_hires();
create trigger employees_count_hires_update after update on data.employees
  referencing old table as old_rows new table as new_rows for each statement execute function internal.count_hires();
create trigger employees_count_hires_delete after delete on data.employees
  referencing old table as old_rows for each statement execute function internal.count_hires();
create trigger employees_clear_hires after truncate on data.employees
  for each statement execute function internal.clear_hires();

insert into data.hires_by_quarter (year, quarter, department_id, job_id, hires)
select extract(year from hiring_date at time zone 'UTC')::integer, extract(quarter from hiring_date at time zone 'UTC')::integer,
       department_id, job_id, count(*)
  from data.employees
 group by 1, 2, 3, 4;
