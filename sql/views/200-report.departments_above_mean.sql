-- Departments hiring above the mean in a year. mean_over 'all' (the original deliverable):
-- the year's hires divided by the number of departments in the departments table, those
-- without hires counting as zero; 'hiring': divided by the departments that hired someone.
-- Reads data.hires_by_department (one row per department and year). Raises 22023 for
-- another mean_over.
create function report.hiring_mean(year integer default 2021, mean_over text default 'all') returns numeric
language plpgsql stable as $$
begin
  if mean_over is null or mean_over not in ('all', 'hiring') then
    raise exception 'mean_over must be all or hiring, got %', coalesce(mean_over, 'null') using errcode = '22023';
  end if;
  return (
    select sum(h.hires)::numeric / nullif(case mean_over when 'all' then (select count(*) from data.departments)
                                                         else count(*) end, 0)
      from data.hires_by_department h
     where h.year = hiring_mean.year and h.hires > 0);
end $$;

-- Every department with its hires in the year (0 without any) and whether it hired above the
-- mean: the one place that says what "above the mean" is; the reports draw all of them.
create function report.department_hires(year integer default 2021, mean_over text default 'all')
returns table (id integer, department text, hired integer, above_mean boolean)
language sql stable as $$
  with mean as (select report.hiring_mean(department_hires.year, department_hires.mean_over) as value)
  select d.department_id, d.department_name, coalesce(h.hires, 0), coalesce(coalesce(h.hires, 0) > mean.value, false)
    from data.departments d
    left join data.hires_by_department h on h.department_id = d.department_id and h.year = department_hires.year
    cross join mean
   order by 3 desc, 2, 1
$$;

comment on function report.department_hires(integer, text) is
  'Every department with its hires in a year (0 without any) and whether that is above the mean per department.';

create function report.departments_above_mean(year integer default 2021, mean_over text default 'all')
returns table (id integer, department text, hired integer)
language sql stable as $$
  select h.id, h.department, h.hired
    from report.department_hires(departments_above_mean.year, departments_above_mean.mean_over) h
   where h.above_mean
   order by 3 desc, 2, 1
$$;

comment on function report.departments_above_mean(integer, text) is
  'Departments whose hires in a year exceed the mean per department (mean_over all: over every department; hiring: over those that hired).';

create view report.departments_above_mean_2021 as
  select * from report.departments_above_mean(2021);
