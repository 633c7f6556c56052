-- What the REST API calls for the ingest log: batches newest first, one batch's rejects, and
-- the counts of GET /stats (also the loader's summary of rejects per reason). Security definer,
-- as in 400-api.requests.sql, whose internal.page_limit bounds the pages.
-- Raises IBTAB unknown table, P0002 no such batch.

-- GET /ingest/batches?table=&limit=
create or replace function api.list_batches(p_table text default null, p_limit integer default null) returns jsonb
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
begin
  if p_table is not null then perform internal.check_table(p_table); end if;
  return (select coalesce(jsonb_agg(to_jsonb(b) order by b.batch_id desc), '[]'::jsonb)
            from (select * from data.ingest_batches
                   where p_table is null or table_name = p_table
                   order by batch_id desc limit internal.page_limit(p_limit, 'batches')) b);
end $$;

-- GET /ingest/batches/{batch_id}/rejects?after_position=&limit=
create or replace function api.batch_rejects(p_batch_id bigint, p_after_position bigint default 0, p_limit integer default null) returns jsonb
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_batch data.ingest_batches;
begin
  select * into v_batch from data.ingest_batches where batch_id = p_batch_id;
  if not found then
    raise exception 'no ingest batch %', p_batch_id using errcode = 'P0002';
  end if;
  return jsonb_build_object('batch_id', v_batch.batch_id, 'table', v_batch.table_name, 'rejected', v_batch.rejected,
    'rejects', (select coalesce(jsonb_agg(jsonb_build_object('position', r.position, 'row', r.payload, 'reasons', r.reasons,
                                                             'rejected_at', r.rejected_at, 'replayed_at', r.replayed_at,
                                                             'replay_batch_id', r.replay_batch_id, 'repeated_in', r.repeated_in) order by r.position), '[]'::jsonb)
                  from (select * from data.ingest_rejects
                         where batch_id = p_batch_id and position > coalesce(p_after_position, 0)
                         order by position limit internal.page_limit(p_limit, 'rejects')) r));
end $$;

-- Rejected rows per reason code, most frequent first (pending: not replayed yet): of one
-- batch (the loader's summary of a file: all it rejected), or of the whole ingest log (GET
-- /stats: each rejected row once, by its current entry, 770-internal.reject_dedupe.sql).
create or replace function runner.reject_reasons(p_batch_id bigint default null) returns table (reason text, rows integer, pending integer)
language sql stable set search_path = pg_catalog, pg_temp as $$
  select reason, count(*)::integer, (count(*) filter (where r.replayed_at is null))::integer
    from data.ingest_rejects r, unnest(r.reasons) as reason
   where (p_batch_id is null and r.repeated_in is null) or r.batch_id = p_batch_id
   group by reason order by 2 desc, 1
$$;

-- GET /stats: rows received, inserted, unchanged, rejected per table; rejects per reason code.
create or replace function api.stats() returns jsonb
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  select jsonb_build_object(
    'tables', (select jsonb_agg(jsonb_build_object(
        'table', t.table_name,
        'batches', coalesce(s.batches, 0), 'refused_batches', coalesce(s.refused, 0),
        'received', coalesce(s.received, 0), 'inserted', coalesce(s.inserted, 0),
        'unchanged', coalesce(s.unchanged, 0), 'rejected', coalesce(s.rejected, 0)) order by t.load_order)
      from data.dictionary_tables t
      left join (select table_name, count(*) as batches, count(*) filter (where error_code is not null) as refused,
                        sum(received) as received, sum(inserted) as inserted, sum(unchanged) as unchanged, sum(rejected) as rejected
                   from data.ingest_batches group by table_name) s on s.table_name = t.table_name),
    'reasons', (select coalesce(jsonb_agg(jsonb_build_object('code', x.reason, 'rejects', x.rows, 'pending', x.pending) order by x.rows desc, x.reason), '[]'::jsonb)
      from runner.reject_reasons() x))
$$;
