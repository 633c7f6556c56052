-- 0001: the hiring tables, the data dictionary that drives validation, and the ingest log.
-- Schemas: data (tables), api (what psql, the loader and the REST API call),
-- internal (helpers), report (views, later). Everything is reachable unqualified
-- through the database's search_path, set by sql/procedures/000-search-path.sql.

create schema data;
create schema api;
create schema internal;
create schema report;

create table data.departments (
  department_id   integer primary key,
  department_name text not null
);

create table data.jobs (
  job_id   integer primary key,
  job_name text not null
);

create table data.employees (
  employee_id   integer primary key,
  employee_name text not null,
  hiring_date   timestamptz not null,
  department_id integer not null references data.departments,
  job_id        integer not null references data.jobs
);
-- Foreign-key checks on delete/restore of departments and jobs, and the reports, look these up.
create index employees_department_id_idx on data.employees (department_id);
create index employees_job_id_idx on data.employees (job_id);

-- The data dictionary: one row per table and per field. The validation in
-- internal.ingest_staged is generated from these rows, and the API serves them,
-- so what is documented is what is enforced.
create table data.dictionary_tables (
  table_name text primary key,
  key_field  text not null,
  load_order integer not null unique
);

create table data.dictionary_fields (
  table_name  text not null references data.dictionary_tables,
  field       text not null,
  ordinal     integer not null check (ordinal >= 1),   -- column position in the CSV files
  kind        text not null check (kind in ('id', 'name', 'datetime')),
  max_length  integer check (max_length > 0),          -- names only
  ref_table   text references data.dictionary_tables,  -- ids that must exist in another table
  description text not null,
  primary key (table_name, field),
  unique (table_name, ordinal)
);

insert into data.dictionary_tables (table_name, key_field, load_order) values
  ('departments', 'department_id', 1),
  ('jobs',        'job_id',        2),
  ('employees',   'employee_id',   3);

insert into data.dictionary_fields (table_name, field, ordinal, kind, max_length, ref_table, description) values
  ('departments', 'department_id',   1, 'id',       null, null,          'Id of the department'),
  ('departments', 'department_name', 2, 'name',     255,  null,          'Name of the department'),
  ('jobs',        'job_id',          1, 'id',       null, null,          'Id of the job'),
  ('jobs',        'job_name',        2, 'name',     255,  null,          'Name of the job'),
  ('employees',   'employee_id',     1, 'id',       null, null,          'Id of the employee'),
  ('employees',   'employee_name',   2, 'name',     255,  null,          'Name and surname of the employee'),
  ('employees',   'hiring_date',     3, 'datetime', null, null,          'Hire datetime in ISO 8601 format'),
  ('employees',   'department_id',   4, 'id',       null, 'departments', 'Id of the department the employee was hired for'),
  ('employees',   'job_id',          5, 'id',       null, 'jobs',        'Id of the job the employee was hired for');

-- The ingest log: one row per batch (a psql CALL, an API request, a CSV file) ...
create table data.ingest_batches (
  batch_id    bigint generated always as identity primary key,
  table_name  text not null references data.dictionary_tables,
  source      text not null check (source in ('sql', 'csv', 'api')),
  received    integer not null default 0 check (received >= 0),
  inserted    integer not null default 0 check (inserted >= 0),
  unchanged   integer not null default 0 check (unchanged >= 0),
  rejected    integer not null default 0 check (rejected >= 0),
  started_at  timestamptz not null default clock_timestamp(),
  finished_at timestamptz,
  check (finished_at is null or inserted + unchanged + rejected = received)
);
create index ingest_batches_table_name_idx on data.ingest_batches (table_name, batch_id);

-- ... and one row per rejected row, exactly as received, with every reason.
create table data.ingest_rejects (
  batch_id    bigint not null references data.ingest_batches on delete cascade,
  table_name  text not null references data.dictionary_tables,
  position    bigint not null check (position >= 1),  -- 1-based index in the batch, or line in the file
  payload     jsonb not null,
  reasons     text[] not null check (cardinality(reasons) > 0),
  rejected_at timestamptz not null default clock_timestamp(),
  primary key (batch_id, position)
);
create index ingest_rejects_table_name_idx on data.ingest_rejects (table_name, batch_id);
