-- The counts the reports read, data.hire_counts and data.hires_by_department (tables and
-- triggers: migrations 0003 and 0006): the one rule for a hire's year and quarter, and the
-- statement-level trigger functions that keep the counts exact.

-- A hire's year and quarter: of its instant in UTC, whatever the session's time zone. Every
-- count (the triggers, api.refresh_reports) takes them from here. A plain SQL function, so the
-- planner inlines it (date_part's float8 is cheaper than extract's numeric).
create or replace function internal.hiring_quarter(p_hired timestamptz) returns table (year integer, quarter integer)
language sql immutable parallel safe as $$
  select date_part('year', p_hired at time zone 'UTC')::integer, date_part('quarter', p_hired at time zone 'UTC')::integer
$$;

-- One aggregate per statement over its transition tables: a bulk load or a restore costs one
-- pass, not one per row. The counts are upserted in key order, so two transactions writing
-- employees at once (plain INSERTs, a restore beside an ingest) queue instead of deadlocking.
-- (A count that falls to zero stays as a 0 row.)
create or replace function internal.count_hires() returns trigger
language plpgsql as $$
begin
  execute format($q$
    with delta as materialized (
      -- Each row's year and quarter computed once (offset 0 keeps the planner from copying
      -- the expressions into every filter).
      select year, department_id, job_id,
             coalesce(sum(n) filter (where quarter = 1), 0)::integer as q1,
             coalesce(sum(n) filter (where quarter = 2), 0)::integer as q2,
             coalesce(sum(n) filter (where quarter = 3), 0)::integer as q3,
             coalesce(sum(n) filter (where quarter = 4), 0)::integer as q4
        from (select h.year, h.quarter, c.department_id, c.job_id, c.n
                from (%s) c cross join lateral internal.hiring_quarter(c.hiring_date) h offset 0) c
       group by 1, 2, 3
    ), quarters as (
      insert into data.hire_counts as h (year, department_id, job_id, q1, q2, q3, q4)
      select * from delta order by year, department_id, job_id
      on conflict (year, department_id, job_id) do update
        set q1 = h.q1 + excluded.q1, q2 = h.q2 + excluded.q2, q3 = h.q3 + excluded.q3, q4 = h.q4 + excluded.q4
      returning 1
    )
    insert into data.hires_by_department as h (year, department_id, hires)
    select year, department_id, sum(q1 + q2 + q3 + q4)::integer from delta group by 1, 2 order by 1, 2
    on conflict (year, department_id) do update set hires = h.hires + excluded.hires$q$,
    case tg_op
      when 'INSERT' then 'select hiring_date, department_id, job_id, 1 as n from new_rows'
      when 'DELETE' then 'select hiring_date, department_id, job_id, -1 as n from old_rows'
      else 'select hiring_date, department_id, job_id, -1 as n from old_rows union all select hiring_date, department_id, job_id, 1 from new_rows'
    end);
  return null;
end $$;

-- TRUNCATE of employees: no rows, no counts.
create or replace function internal.clear_hires() returns trigger
language plpgsql as $$
begin
  delete from data.hire_counts;
  delete from data.hires_by_department;
  return null;
end $$;
