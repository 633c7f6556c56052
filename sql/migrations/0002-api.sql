-- 0002: what the REST API needs: refused requests in the ingest log, the batch format,
-- replayed rejects, idempotency keys, reason codes as data, and the API's database role.

-- A refused request (empty, over 1000 rows, not an array, malformed JSON or CSV) is logged
-- with its error and no rows; format says whether payloads are JSON objects or CSV fields.
alter table data.ingest_batches
  add column format text not null default 'json' check (format in ('json', 'csv')),
  add column error_code text,
  add column error_message text,
  drop constraint ingest_batches_check,
  add constraint ingest_batches_counts_check
    check (finished_at is null or error_code is not null or inserted + unchanged + rejected = received);
update data.ingest_batches set format = 'csv' where source = 'csv';

-- replay_rejects marks the rejects that finally went in.
alter table data.ingest_rejects
  add column replayed_at timestamptz,
  add column replay_batch_id bigint references data.ingest_batches;
create index ingest_rejects_pending_idx on data.ingest_rejects (table_name) where replayed_at is null;

-- A retried POST with the same Idempotency-Key and body gets the first answer.
create table data.idempotency_keys (
  idempotency_key text primary key check (char_length(idempotency_key) between 1 and 255),
  request_hash    text not null,
  response        jsonb not null,
  created_at      timestamptz not null default now()
);
create index idempotency_keys_created_at_idx on data.idempotency_keys (created_at);

-- Every reason code a row can get, for the data-dictionary endpoint and the docs.
create table data.reason_codes (
  code        text primary key,   -- <field> stands for a field name
  description text not null
);
insert into data.reason_codes (code, description) values
  ('missing:<field>',           'absent, JSON null, or blank after trimming: all fields are mandatory'),
  ('not_integer:<field>',       'an id that is not a JSON integer or a string of decimal digits'),
  ('out_of_range:<field>',      'an id outside 1..2147483647'),
  ('too_long:<field>',          'a name longer than max_length characters after trimming'),
  ('bad_text:<field>',          'a name that is not a string or contains control characters'),
  ('bad_datetime:<field>',      'not an RFC 3339 date-time with seconds and an explicit offset, or not a real calendar instant'),
  ('unknown_reference:<field>', 'the referenced department or job does not exist'),
  ('unknown_field:<field>',     'a field the table does not have'),
  ('not_an_object',             'a batch element that is not a JSON object'),
  ('wrong_field_count',         'a CSV line without exactly the table''s number of fields'),
  ('duplicate_id',              'the id exists with different content, or appears earlier in the same batch');

-- The API's role: may execute the api routines and read, nothing else (grants are in
-- sql/procedures/900-grants.sql). Roles are cluster-wide, so create it once.
do $$
begin
  if not exists (select from pg_roles where rolname = 'hirebase_api') then
    create role hirebase_api nologin;
  end if;
  -- The server connects as the owner and switches to this role.
  if not pg_has_role(current_user, 'hirebase_api', 'member') then
    execute format('grant hirebase_api to %I', current_user);
  end if;
exception when insufficient_privilege then
  raise exception 'the migrating user % may not create or join the role hirebase_api, which the API runs as', current_user
    using errcode = '42501',
          hint = format('grant %I CREATEROLE once, or have an administrator run: CREATE ROLE hirebase_api NOLOGIN; GRANT hirebase_api TO %I;', current_user, current_user);
end $$;
