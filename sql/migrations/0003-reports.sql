-- 0003: the counts the reports read, kept exact by statement-level triggers on employees in
-- the same transaction as every ingest, load, restore or direct write, so a report reads
-- one row per department and job (or per department) instead of scanning every employee.
--   hires_by_quarter:    per UTC year, department and job, the hires in each quarter;
--   hires_by_department: per UTC year and department, the hires.
-- No CHECK (>= 0) on the counts: INSERT ... ON CONFLICT checks it on the proposed delta.

create table data.hires_by_quarter (
  year          integer not null,
  department_id integer not null,
  job_id        integer not null,
  q1            integer not null default 0,
  q2            integer not null default 0,
  q3            integer not null default 0,
  q4            integer not null default 0,
  primary key (year, department_id, job_id)
);

create table data.hires_by_department (
  year          integer not null,
  department_id integer not null,
  hires         integer not null,
  primary key (year, department_id)
);

-- One aggregate per statement over its transition tables: a bulk load or a restore costs
-- one pass, not one per row. (A count that falls to zero stays as a 0 row.)
create function internal.count_hires() returns trigger
language plpgsql as $$
begin
  execute format($q$
    with delta as materialized (
      select extract(year from hiring_date at time zone 'UTC')::integer as year, department_id, job_id,
             coalesce(sum(n) filter (where extract(quarter from hiring_date at time zone 'UTC') = 1), 0)::integer as q1,
             coalesce(sum(n) filter (where extract(quarter from hiring_date at time zone 'UTC') = 2), 0)::integer as q2,
             coalesce(sum(n) filter (where extract(quarter from hiring_date at time zone 'UTC') = 3), 0)::integer as q3,
             coalesce(sum(n) filter (where extract(quarter from hiring_date at time zone 'UTC') = 4), 0)::integer as q4
        from (%s) c
       group by 1, 2, 3
    ), quarters as (
      insert into data.hires_by_quarter as h (year, department_id, job_id, q1, q2, q3, q4)
      select * from delta
      on conflict (year, department_id, job_id) do update
        set q1 = h.q1 + excluded.q1, q2 = h.q2 + excluded.q2, q3 = h.q3 + excluded.q3, q4 = h.q4 + excluded.q4
      returning 1
    )
    insert into data.hires_by_department as h (year, department_id, hires)
    select year, department_id, sum(q1 + q2 + q3 + q4)::integer from delta group by 1, 2
    on conflict (year, department_id) do update set hires = h.hires + excluded.hires$q$,
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
  delete from data.hires_by_department;
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

insert into data.hires_by_quarter (year, department_id, job_id, q1, q2, q3, q4)
select extract(year from hiring_date at time zone 'UTC')::integer, department_id, job_id,
       count(*) filter (where extract(quarter from hiring_date at time zone 'UTC') = 1),
       count(*) filter (where extract(quarter from hiring_date at time zone 'UTC') = 2),
       count(*) filter (where extract(quarter from hiring_date at time zone 'UTC') = 3),
       count(*) filter (where extract(quarter from hiring_date at time zone 'UTC') = 4)
  from data.employees
 group by 1, 2, 3;
insert into data.hires_by_department (year, department_id, hires)
select year, department_id, sum(q1 + q2 + q3 + q4) from data.hires_by_quarter group by 1, 2;
