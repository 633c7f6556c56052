-- 0004: the backup request queue. pg_cron cannot write files, so its job (or anyone)
-- records a request and NOTIFYs; the long-running runner takes requests with
-- FOR UPDATE SKIP LOCKED, writes the backup, and records the outcome here.

create table data.backup_requests (
  request_id   bigint generated always as identity primary key,
  table_name   text not null references data.dictionary_tables,
  requested_by text not null check (requested_by in ('cron', 'sql', 'api')),
  requested_at timestamptz not null default clock_timestamp(),
  started_at   timestamptz,
  finished_at  timestamptz,
  worker       text,         -- which runner performed it
  file         text,         -- relative to BACKUP_DIR
  rows         bigint,
  bytes        bigint,
  sha256       text,
  error        text,
  check (finished_at is null or (file is null) <> (error is null))
);
create index backup_requests_pending_idx on data.backup_requests (request_id) where finished_at is null;
create index backup_requests_finished_at_idx on data.backup_requests (finished_at);

-- Housekeeping deletes old batches; a reject replayed by one of them keeps its mark.
alter table data.ingest_rejects
  drop constraint ingest_rejects_replay_batch_id_fkey,
  add constraint ingest_rejects_replay_batch_id_fkey foreign key (replay_batch_id) references data.ingest_batches on delete set null;
create index ingest_batches_finished_at_idx on data.ingest_batches (finished_at);
