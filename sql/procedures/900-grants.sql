-- Least privilege: the API's role (internal.api_role(), made by 010-roles.sql) may execute the
-- api routines and read the tables and views, nothing else. Routines run as their owner.
-- Grants to any other role (e.g. the cluster-wide hirebase_api of versions before 0.2, which
-- every migrating owner joined) are revoked, so no role reaches this database by them.
revoke execute on all routines in schema api, internal, runner from public;
do $$
declare
  v_api text := internal.api_role();
  r record;
begin
  for r in
    select distinct g.rolname from (
      select n.nspacl as acl, n.nspowner as owner from pg_namespace n where n.nspname in ('api', 'data', 'report', 'internal', 'runner')
      union all
      select c.relacl, c.relowner from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname in ('api', 'data', 'report', 'internal', 'runner')
      union all
      select p.proacl, p.proowner from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('api', 'data', 'report', 'internal', 'runner')
    ) a, aclexplode(a.acl) x join pg_roles g on g.oid = x.grantee
    where g.rolname <> v_api and x.grantee <> a.owner and g.oid <> (select datdba from pg_database where datname = current_database())
  loop
    execute format('revoke all on all tables in schema api, data, report, internal, runner from %I', r.rolname);
    execute format('revoke all on all routines in schema api, data, report, internal, runner from %I', r.rolname);
    execute format('revoke all on schema api, data, report, internal, runner from %I', r.rolname);
  end loop;
  -- Only the owner and the API role connect; nobody else may make temporary objects (the
  -- SECURITY DEFINER routines also check every temp table they touch: 200-ingest.sql).
  execute format('revoke connect, temporary on database %I from public', current_database());
  -- public comes first on the database's search_path: whoever may create there can plant a
  -- public.ingest_batch (or a table named like one of ours) that an owner's psql session runs
  -- or reads. PostgreSQL 15 grants nobody CREATE there, but a database pg_upgrade'd from 14
  -- or older still grants it to PUBLIC.
  revoke create on schema public from public;
  if exists (select from pg_namespace n, aclexplode(n.nspacl) x
              where n.nspname = 'public' and x.privilege_type = 'CREATE'
                and x.grantee <> n.nspowner and x.grantee <> (select datdba from pg_database where datname = current_database())
                and (x.grantee = 0 or pg_has_role(v_api, x.grantee, 'usage'))) then
    raise exception 'the schema public, first on this database''s search_path, lets PUBLIC or the API role create objects'
      using errcode = '42501', hint = 'have its owner run: REVOKE CREATE ON SCHEMA public FROM PUBLIC (and from the API role)';
  end if;
  execute format('grant connect on database %I to %I', current_database(), v_api);
  execute format('grant usage on schema api, data, report to %I', v_api);
  execute format('grant execute on all routines in schema api to %I', v_api);
  execute format('grant select on all tables in schema data, report to %I', v_api);
  -- The loader's staging and housekeeping are the owner's: housekeeping deletes the ingest log.
  execute format('revoke execute on function api.open_ingest_input(), api.ingest_staged(text, text, boolean), api.housekeeping(interval, interval) from %I', v_api);
end $$;
