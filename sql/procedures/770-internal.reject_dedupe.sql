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
  -- Each distinct new reject looks its predecessors up through ingest_rejects_dedupe_idx
  -- (LATERAL: an index probe each, whatever the statistics say). As a plain join, a table
  -- filled moments ago (stale statistics) got a merge join on table_name alone: 10,442 rejects
  -- compared 109 million pairs (10 s, doubling a 300k-row load; worse than that at 1M).
  delete from data.ingest_rejects d
   where (d.batch_id, d.position) in (
     select o.batch_id, o.position
       from (select distinct r.table_name, md5(r.payload::text) as hash, r.payload, r.reasons, r.batch_id from new_rejects r) n
       cross join lateral (
         select o.batch_id, o.position
           from data.ingest_rejects o
          where o.table_name = n.table_name and md5(o.payload::text) = n.hash  -- ingest_rejects_dedupe_idx
            and o.replayed_at is null and o.batch_id <> n.batch_id
            and o.payload = n.payload and o.reasons = n.reasons
            for update of o skip locked) o);
  return null;
end $$;
create or replace trigger ingest_rejects_drop_repeated after insert on data.ingest_rejects
  referencing new table as new_rejects for each statement execute function internal.drop_repeated_rejects();
