// sql/procedures and sql/views are re-applied after every migration: doing so again must change nothing.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { applyDefinitions } from '../../src/migrate.ts'
import { freshDatabase } from '../support.ts'

const { sql } = await freshDatabase()

const snapshot = () => sql`
  select n.nspname || '.' || p.proname as name, pg_get_functiondef(p.oid) as body, obj_description(p.oid, 'pg_proc') as comment
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname in ('api', 'internal', 'report')
  union all
  select schemaname || '.' || viewname, definition, null from pg_views where schemaname in ('api', 'internal', 'report')
  order by 1, 2`

test('applying the definitions twice changes nothing', async () => {
  const before = await snapshot()
  await applyDefinitions(sql)
  await applyDefinitions(sql)
  assert.deepEqual(await snapshot(), before)
})

test('the objects psql users rely on resolve unqualified', async () => {
  const [row] = await sql`select to_regclass('departments') d, to_regclass('jobs') j, to_regclass('employees') e,
    to_regclass('ingest_batches') b, to_regclass('ingest_rejects') r,
    to_regprocedure('ingest_batch(text, text, text, bigint, integer, integer, integer, integer)') p,
    to_regprocedure('ingest_batch(text, jsonb, text, bigint, integer, integer, integer, integer)') pj`
  assert.deepEqual(Object.values(row).map(String), ['departments', 'jobs', 'employees', 'ingest_batches', 'ingest_rejects',
    'ingest_batch(text,text,text,bigint,integer,integer,integer,integer)', 'ingest_batch(text,jsonb,text,bigint,integer,integer,integer,integer)'])
})
