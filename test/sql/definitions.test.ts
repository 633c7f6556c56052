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

test('the engine is compiled per table and input shape, readable, and only the owner may run it', async () => {
  const functions = await sql<{ name: string; source: string; api_may: boolean; definer: boolean }[]>`
    select p.proname as name, pg_get_functiondef(p.oid) as source, p.prosecdef as definer,
           has_function_privilege(${(await sql`select internal.api_role() as r`)[0].r}, p.oid, 'execute') as api_may
      from pg_proc p where p.pronamespace = 'internal'::regnamespace and p.proname ~ '^ingest_.+_(json|csv)$' order by 1`
  assert.deepEqual(functions.map((f) => f.name), ['ingest_departments_csv', 'ingest_departments_json', 'ingest_employees_csv',
    'ingest_employees_json', 'ingest_jobs_csv', 'ingest_jobs_json'])
  for (const f of functions) {
    assert.equal(f.api_may, false, f.name)
    assert.equal(f.definer, false, f.name)
  }
  const json = functions.find((f) => f.name === 'ingest_employees_json')!.source
  // One CTE per step, on lines of their own, and a comment naming every reason code a row can get.
  for (const step of ['shaped', 'checked', 'typed', 'verdict', 'repeated', 'judged', 'rejected_rows', 'inserted_rows']) assert.match(json, new RegExp(`\\n\\s*(with|\\),) ${step} as`), step)
  const fields = ['employee_id', 'employee_name', 'hiring_date', 'department_id', 'job_id']
  const ids = ['employee_id', 'department_id', 'job_id']
  const named = [
    'bad_encoding', 'unreadable', 'not_an_object', 'unknown_field:<field>', 'duplicate_id', 'too_long:employee_name',
    'bad_text:employee_name', 'bad_datetime:hiring_date', 'unknown_reference:department_id', 'unknown_reference:job_id',
    ...fields.map((f) => `missing:${f}`), ...ids.map((f) => `not_integer:${f}`), ...ids.map((f) => `out_of_range:${f}`),
  ]
  // (every code there is, but the CSV one, is in the list)
  for (const { code } of await sql<{ code: string }[]>`select code from data.reason_codes where code <> 'wrong_field_count'`) {
    assert.ok(named.some((n) => n === code || n.replace(/:.*/, ':<field>') === code), code)
  }
  const comments = json.split('\n').filter((line) => line.includes('--')).map((line) => line.slice(line.indexOf('--'))).join('\n')
  for (const code of named) assert.ok(comments.includes(code), code)
  assert.match(functions.find((f) => f.name === 'ingest_employees_csv')!.source, /-- .*wrong_field_count/)
})

test('a change to the data dictionary regenerates the functions in the same transaction', async () => {
  const rolledBack = new Error('rolled back')
  await assert.rejects(sql.begin(async (tx) => {
    // A tighter rule: the compiled function enforces it at once.
    await tx`update data.dictionary_fields set max_length = 3 where table_name = 'jobs' and field = 'job_name'`
    const [r] = await tx`call ingest_batch('jobs', '[{"job_id": 1, "job_name": "abcd"}, {"job_id": 2, "job_name": "abc"}]')`
    assert.deepEqual([r.inserted, r.rejected], [1, 1])
    const [{ reasons }] = await tx`select reasons from data.ingest_rejects where batch_id = ${r.batch_id}`
    assert.deepEqual(reasons, ['too_long:job_name'])
    // A new table: its functions appear with its dictionary rows, and go with them.
    await tx`create table data.projects (project_id integer primary key, project_name text not null)`
    await tx`insert into data.dictionary_tables (table_name, key_field, load_order) values ('projects', 'project_id', 4)`
    await tx`insert into data.dictionary_fields (table_name, field, ordinal, kind, max_length, description) values
      ('projects', 'project_id', 1, 'id', null, 'Id'), ('projects', 'project_name', 2, 'name', 10, 'Name')`
    const [p] = await tx`call ingest_batch('projects', '[{"project_id": 1, "project_name": "Apollo"}, {"project_id": "x", "project_name": "Gemini"}]')`
    assert.deepEqual([p.inserted, p.rejected], [1, 1])
    const [{ csv }] = await tx`select to_regprocedure('internal.ingest_projects_csv(bigint, boolean)') is not null as csv`
    assert.equal(csv, true)
    await tx`delete from data.ingest_rejects where table_name = 'projects'`
    await tx`delete from data.ingest_batches where table_name = 'projects'`
    await tx`delete from data.dictionary_fields where table_name = 'projects'`
    await tx`delete from data.dictionary_tables where table_name = 'projects'`
    const [{ gone }] = await tx`select to_regprocedure('internal.ingest_projects_json(bigint, boolean)') is null as gone`
    assert.equal(gone, true)
    throw rolledBack
  }), rolledBack)
  // Rolled back: the rule is 255 again.
  const [r] = await sql`call ingest_batch('jobs', '[{"job_id": 1, "job_name": "abcd"}]')`
  assert.equal(r.inserted, 1)
})

test('batches of one session keep the staging table\'s file, so the compiled plans stay cached', async () => {
  // A TRUNCATE gives a table a new file, which makes every cached plan that reads it plan again.
  const session = await sql.reserve()
  try {
    const files: number[] = []
    for (let i = 0; i < 3; i++) {
      await session`call ingest_batch('jobs', ${JSON.stringify([{ job_id: 800 + i, job_name: `Cached ${i}` }, { job_id: 'x', job_name: 'bad' }])})`
      files.push((await session`select pg_relation_filenode('pg_temp.ingest_input') as f`)[0].f)
    }
    // Two batches in one transaction: the second empties what the first left.
    await session.unsafe('begin')
    await session`call ingest_batch('jobs', '[{"job_id": 810, "job_name": "Same transaction"}]')`
    const [second] = await session`call ingest_batch('jobs', '[{"job_id": 811, "job_name": "Same transaction"}]')`
    assert.equal(second.received, 1)
    files.push((await session`select pg_relation_filenode('pg_temp.ingest_input') as f`)[0].f)
    await session.unsafe('commit')
    assert.equal(new Set(files).size, 1, files.join(', '))
  } finally {
    session.release()
  }
})

test('names with line breaks, dollar quotes and comment marks compile into working functions, nothing injected', async () => {
  const rolledBack = new Error('rolled back')
  await assert.rejects(sql.begin(async (tx) => {
    const table = 'x$body$\ny'
    await tx.unsafe(`create table data."x$body$\ny" ("a$body$" integer primary key, "n\n--" text not null)`)
    await tx`insert into data.dictionary_tables (table_name, key_field, load_order) values (${table}, 'a$body$', 9)`
    await tx`insert into data.dictionary_fields (table_name, field, ordinal, kind, max_length, description) values
      (${table}, 'a$body$', 1, 'id', null, 'Id'), (${table}, ${'n\n--'}, 2, 'name', 5, 'Name')`
    const [r] = await tx`call ingest_batch(${table}, ${JSON.stringify([{ 'a$body$': 1, 'n\n--': 'ok' }, { 'a$body$': 2, 'n\n--': 'too long' }])})`
    assert.deepEqual([r.inserted, r.rejected], [1, 1])
    const [{ reasons }] = await tx`select reasons from data.ingest_rejects where batch_id = ${r.batch_id}`
    assert.deepEqual(reasons, ['too_long:n\n--'])
    throw rolledBack
  }), rolledBack)
})
