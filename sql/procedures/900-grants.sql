-- Least privilege: the API's role (hirebase_api, created by 0002) may execute the api
-- routines and read the tables and views, nothing else. Routines run as their owner.
revoke execute on all routines in schema api, internal from public;
grant usage on schema api, data, report to hirebase_api;
grant execute on all routines in schema api to hirebase_api;
grant select on all tables in schema data, report to hirebase_api;
