-- A row rejected again with the same payload and the same reasons (a reload of the same
-- file, a client sending the same bad row) is logged once per table: the newest batch keeps
-- it, and the older pending entries of other batches go (those batches keep their counts).
-- Replays are left alone: replay_rejects updates the originals itself (it sets
-- hirebase.replaying for its own batch).
create or replace function internal.drop_repeated_rejects() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  if current_setting('hirebase.replaying', true) = 'on' then
    return null;
  end if;
  -- Entries another transaction is deleting (a concurrent batch with the same bad rows) are
  -- skipped, not waited for: two such batches deleting the same old rows in different orders
  -- deadlocked (a 503 to the client). A skipped entry goes at the next repeat.
  delete from data.ingest_rejects d
   where (d.batch_id, d.position) in (
     select o.batch_id, o.position
       from data.ingest_rejects o
       join new_rejects n
         on o.table_name = n.table_name and md5(o.payload::text) = md5(n.payload::text)  -- ingest_rejects_dedupe_idx
        and o.replayed_at is null and o.batch_id <> n.batch_id
        and o.payload = n.payload and o.reasons = n.reasons
        for update of o skip locked);
  return null;
end $$;
create or replace trigger ingest_rejects_drop_repeated after insert on data.ingest_rejects
  referencing new table as new_rejects for each statement execute function internal.drop_repeated_rejects();
