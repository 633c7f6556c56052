-- The API's role reads the reports (the report schema is rebuilt on every apply).
grant usage on schema report to hirebase_api;
grant select on all tables in schema report to hirebase_api;
grant execute on all routines in schema report to hirebase_api;
