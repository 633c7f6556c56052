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

create function report.departments_above_mean(year integer default 2021, mean_over text default 'all')
returns table (id integer, department text, hired integer)
language sql stable as $$
  with mean as (select report.hiring_mean(departments_above_mean.year, departments_above_mean.mean_over) as value)
  select d.department_id, d.department_name, h.hires
    from data.hires_by_department h
    join data.departments d on d.department_id = h.department_id
    cross join mean
   where h.year = departments_above_mean.year and h.hires > mean.value
   order by 3 desc, 2, 1
$$;

comment on function report.departments_above_mean(integer, text) is
  'Departments whose hires in a year exceed the mean per department (mean_over all: over every department; hiring: over those that hired).';

create view report.departments_above_mean_2021 as
  select * from report.departments_above_mean(2021);
