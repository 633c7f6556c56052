-- 0006: data.hires_by_quarter is renamed data.hire_counts: it shared its name with the report
-- function report.hires_by_quarter(), and both are on the search path, so
-- `select * from hires_by_quarter` returned raw id counts instead of the report.
--
-- It also brings a database migrated before 0003 was edited (0003 as first committed kept one
-- row per year, quarter, department and job, and had no hires_by_department) to the schema
-- 0003 makes now, from the counts it already holds. (0002 was edited too, but only its error
-- message when the role cannot be made: no schema to bring.) The trigger functions themselves
-- are re-applied from sql/procedures/150-internal.count_hires.sql after the migrations.
do $$
begin
  if exists (select from pg_attribute where attrelid = 'data.hires_by_quarter'::regclass and attname = 'quarter' and not attisdropped) then
    create table data.hire_counts (
      year          integer not null,
      department_id integer not null,
      job_id        integer not null,
      q1            integer not null default 0,
      q2            integer not null default 0,
      q3            integer not null default 0,
      q4            integer not null default 0,
      primary key (year, department_id, job_id)
    );
    insert into data.hire_counts (year, department_id, job_id, q1, q2, q3, q4)
    select year, department_id, job_id,
           coalesce(sum(hires) filter (where quarter = 1), 0), coalesce(sum(hires) filter (where quarter = 2), 0),
           coalesce(sum(hires) filter (where quarter = 3), 0), coalesce(sum(hires) filter (where quarter = 4), 0)
      from data.hires_by_quarter
     group by 1, 2, 3;
    create table data.hires_by_department (
      year          integer not null,
      department_id integer not null,
      hires         integer not null,
      primary key (year, department_id)
    );
    insert into data.hires_by_department (year, department_id, hires)
    select year, department_id, sum(hires) from data.hires_by_quarter group by 1, 2;
    drop table data.hires_by_quarter;
  else
    alter table data.hires_by_quarter rename to hire_counts;
    alter index data.hires_by_quarter_pkey rename to hire_counts_pkey;
  end if;
end $$;
