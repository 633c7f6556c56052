-- A row rejected again with the same payload and the same reasons (a reload of the same
-- file, a client sending the same bad row) is logged once per table: the newest batch holds
-- the current entry, and the older current entries of other batches stay as their batches
-- logged them, marked repeated_in (the batch that rejected the row again). The reject log is
-- an audit trail: a caller resending someone else's bad row must not take it out of that
-- batch's record. Replays are left alone: replay_rejects updates the originals itself, and its
-- batch is marked replay by the owner (data.ingest_batches, which no caller can write).
-- (Until 0009 the trigger deleted the older entries: ingest_rejects_drop_repeated.)
drop trigger if exists ingest_rejects_drop_repeated on data.ingest_rejects;
drop function if exists internal.drop_repeated_rejects();
create or replace function internal.mark_repeated_rejects() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  -- Entries another transaction is marking (a concurrent batch with the same bad rows) are
  -- skipped, not waited for: two such batches taking the same old rows in different orders
  -- deadlocked (a 503 to the client). A skipped entry is marked at the next repeat.
  -- Each distinct new reject looks its predecessors up through ingest_rejects_dedupe_idx
  -- (LATERAL: an index probe each, whatever the statistics say). As a plain join, a table
  -- filled moments ago (stale statistics) got a merge join on table_name alone: 10,442 rejects
  -- compared 109 million pairs (10 s, doubling a 300k-row load; worse than that at 1M).
  update data.ingest_rejects d
     set repeated_in = o.newer
    from (select o.batch_id, o.position, n.batch_id as newer
            from (select distinct r.table_name, md5(r.payload::text) as hash, r.payload, r.reasons, r.batch_id
                    from new_rejects r
                   where not (select b.replay from data.ingest_batches b where b.batch_id = r.batch_id)) n
            cross join lateral (
              select o.batch_id, o.position
                from data.ingest_rejects o
               where o.table_name = n.table_name and md5(o.payload::text) = n.hash  -- ingest_rejects_dedupe_idx
                 and o.replayed_at is null and o.repeated_in is null and o.batch_id <> n.batch_id
                 and o.payload = n.payload and o.reasons = n.reasons
                 for update of o skip locked) o) o
   where d.batch_id = o.batch_id and d.position = o.position;
  return null;
end $$;
create or replace trigger ingest_rejects_mark_repeated after insert on data.ingest_rejects
  referencing new table as new_rejects for each statement execute function internal.mark_repeated_rejects();
