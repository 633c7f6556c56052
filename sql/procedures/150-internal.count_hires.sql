-- The statement-level trigger function behind data.hires_by_quarter and hires_by_department
-- (the triggers and tables are in migration 0003): one aggregate per statement over its
-- transition tables. The counts are upserted in key order, so two transactions writing
-- employees at once (plain INSERTs, a restore beside an ingest) queue instead of deadlocking.
create or replace function internal.count_hires() returns trigger
language plpgsql as $$
begin
  execute format($q$
    with delta as materialized (
      -- Each row's year and quarter computed once (offset 0 keeps the planner from copying
      -- the expressions into every filter; date_part's float8 is cheaper than extract's numeric).
      select year, department_id, job_id,
             coalesce(sum(n) filter (where quarter = 1), 0)::integer as q1,
             coalesce(sum(n) filter (where quarter = 2), 0)::integer as q2,
             coalesce(sum(n) filter (where quarter = 3), 0)::integer as q3,
             coalesce(sum(n) filter (where quarter = 4), 0)::integer as q4
        from (select date_part('year', hiring_date at time zone 'UTC')::integer as year,
                     date_part('quarter', hiring_date at time zone 'UTC')::integer as quarter, department_id, job_id, n
                from (%s) c offset 0) c
       group by 1, 2, 3
    ), quarters as (
      insert into data.hires_by_quarter as h (year, department_id, job_id, q1, q2, q3, q4)
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
