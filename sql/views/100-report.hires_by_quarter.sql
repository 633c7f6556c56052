-- Hires by quarter: for each department and job with at least one hire in the year, the
-- employees hired in each quarter of the UTC hiring instant. Reads data.hire_counts,
-- which triggers keep equal to counting data.employees.
create function report.hires_by_quarter(year integer default 2021)
returns table (department text, job text, q1 integer, q2 integer, q3 integer, q4 integer)
language sql stable as $$
  select d.department_name, j.job_name, h.q1, h.q2, h.q3, h.q4
    from data.hire_counts h
    join data.departments d on d.department_id = h.department_id
    join data.jobs j on j.job_id = h.job_id
   where h.year = hires_by_quarter.year and h.q1 + h.q2 + h.q3 + h.q4 > 0
   order by d.department_name, j.job_name, d.department_id, j.job_id
$$;

comment on function report.hires_by_quarter(integer) is
  'Employees hired per department and job in each quarter (UTC) of a year, ordered by department, then job.';

create view report.hires_by_quarter_2021 as
  select * from report.hires_by_quarter(2021);
