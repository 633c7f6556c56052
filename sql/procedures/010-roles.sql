-- One API role per database, and its login role (roles are cluster-wide, so each carries the
-- database's name: the owner of one hirebase database can never act in another):
--   hirebase_api_<database>:   NOLOGIN; may execute the api routines and read data and report
--                              (sql/procedures/900-grants.sql), nothing else;
--   hirebase_login_<database>: LOGIN, member of the API role only; the API server logs in as it.
-- Both are granted to this database's owner only (so it can manage them and SET ROLE). A name
-- longer than 44 bytes is replaced by 24 hex digits of its MD5, to stay within PostgreSQL's
-- 63-byte identifiers. The runner's plumbing lives in the schema runner, which only the owner
-- may use.
create schema if not exists runner;
revoke all on schema runner from public;

create or replace function internal.role_base() returns text
language sql stable
return case when octet_length(current_database()) <= 44 then current_database() else left(md5(current_database()), 24) end;

create or replace function internal.api_role() returns text
language sql stable
return 'hirebase_api_' || internal.role_base();

create or replace function internal.api_login_role() returns text
language sql stable
return 'hirebase_login_' || internal.role_base();

-- Creates what is missing. An owner without CREATEROLE gets the statements an administrator
-- must run once; roles an administrator made are used as they are.
do $$
declare
  v_api text := internal.api_role();
  v_login text := internal.api_login_role();
  v_owner text := (select pg_get_userbyid(datdba) from pg_database where datname = current_database());
  v_statement text;
  v_needed text[] := '{}';
begin
  foreach v_statement in array array[
    case when not exists (select from pg_roles where rolname = v_api) then format('create role %I nologin', v_api) end,
    case when not exists (select from pg_roles where rolname = v_login) then format('create role %I login', v_login) end,
    format('grant %I to %I', v_api, v_login),
    format('grant %I to %I', v_api, v_owner),
    -- (so that the owner may also end the login role's sessions, e.g. to drop the database)
    format('grant %I to %I', v_login, v_owner)
  ] loop
    continue when v_statement is null;
    -- Grants already in place need no privilege.
    continue when exists (
      select from pg_auth_members m join pg_roles r on r.oid = m.roleid join pg_roles u on u.oid = m.member
       where v_statement = format('grant %I to %I', r.rolname, u.rolname));
    begin
      execute v_statement;
    exception when insufficient_privilege or undefined_object then  -- (a grant of a role not made)
      v_needed := v_needed || v_statement;
    end;
  end loop;
  if cardinality(v_needed) > 0 then
    raise exception 'the migrating user % may not create or grant the roles the API runs as: grant it CREATEROLE once, or have an administrator run: %;',
      current_user, array_to_string(v_needed, '; ')
      using errcode = '42501';
  end if;
  -- Nobody may hide behind these roles' privileges: they must stay plain.
  if exists (select from pg_roles where rolname in (v_api, v_login) and (rolsuper or rolcreaterole or rolcreatedb or rolbypassrls or rolreplication)) then
    raise exception 'the role % or % has more than the API needs (superuser, CREATEROLE, CREATEDB, BYPASSRLS or REPLICATION)', v_api, v_login
      using errcode = '42501';
  end if;
  -- ... and hold nothing but each other: the login role is a member of the API role only.
  if exists (select from pg_auth_members m join pg_roles r on r.oid = m.member join pg_roles g on g.oid = m.roleid
              where (r.rolname = v_api) or (r.rolname = v_login and g.rolname <> v_api)) then
    raise exception 'the role % or % is a member of another role: the API must hold its own privileges only', v_api, v_login
      using errcode = '42501', hint = 'revoke those memberships, e.g. REVOKE <role> FROM ' || quote_ident(v_login);
  end if;
  if exists (select from pg_roles where rolname = v_api and rolcanlogin) then
    raise exception 'the API role % may log in: it must be NOLOGIN (the server logs in as %)', v_api, v_login using errcode = '42501';
  end if;
end $$;
