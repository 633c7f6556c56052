-- The years that have hires, with the headline numbers of each: hires, departments and jobs
-- that hired, hires per quarter. The reports list these years (index.html, the no-data page)
-- and compare a year with the same quarters of the one before (a year in progress against a
-- whole year would mislead). Reads the trigger-maintained counts: cheap at any size.
create function report.hiring_years()
returns table (year integer, hires integer, departments integer, jobs integer, q1 integer, q2 integer, q3 integer, q4 integer)
language sql stable as $$
  select h.year, sum(h.q1 + h.q2 + h.q3 + h.q4)::integer,
         count(distinct h.department_id)::integer, count(distinct h.job_id)::integer,
         sum(h.q1)::integer, sum(h.q2)::integer, sum(h.q3)::integer, sum(h.q4)::integer
    from data.hire_counts h
   where h.q1 + h.q2 + h.q3 + h.q4 > 0
   group by h.year
   order by h.year
$$;

comment on function report.hiring_years() is
  'Each UTC year with at least one hire: its hires, the number of departments and of jobs that hired, its hires per quarter.';
