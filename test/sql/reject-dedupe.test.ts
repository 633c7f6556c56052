// A reload does not log the same rejects again (sql/procedures/770-internal.reject_dedupe.sql),
// and replay_rejects speaks only its summary.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect } from '../../src/database.ts'
import { freshDatabase } from '../support.ts'

const db = await freshDatabase()

interface Outcome { batch_id: string; received: number; inserted: number; unchanged: number; rejected: number }
const ingest = async (table: string, rows: unknown) =>
  (await db.sql<Outcome[]>`call ingest_batch(${table}, ${db.sql.json(rows as never)})`)[0]
const log = (table: string) => db.sql<{ batch_id: string; position: number; payload: unknown; reasons: string[] }[]>`
  select batch_id::text, position::integer, payload, reasons from data.ingest_rejects where table_name = ${table} order by batch_id, position`

test('a row rejected again with the same payload and reasons is logged once, under the newest batch', async () => {
  const rows = [{ job_id: 1, job_name: 'ok' }, { job_id: 'x', job_name: 'bad id' }, { job_id: 'x', job_name: 'bad id' }, { job_id: 2, job_name: '' }]
  const first = await ingest('jobs', rows)
  assert.equal(first.rejected, 3)
  assert.equal((await log('jobs')).length, 3)
  const second = await ingest('jobs', rows)
  // The batch's own verdict is whole (its counts, and its rejects for the API's answer) ...
  assert.equal(second.rejected, 3)
  assert.deepEqual((await log('jobs')).map((r) => [r.batch_id, r.position]), [[second.batch_id, 2], [second.batch_id, 3], [second.batch_id, 4]])
  const third = await ingest('jobs', rows)
  // ... and the log holds each rejected row once however often it comes (the two identical
  // lines of one batch are two rows of that batch).
  assert.deepEqual((await log('jobs')).map((r) => [r.batch_id, r.position]), [[third.batch_id, 2], [third.batch_id, 3], [third.batch_id, 4]])
  const stats = await db.sql<{ s: { reasons: { code: string; rejects: number }[] } }[]>`select api.stats() as s`
  assert.equal(stats[0].s.reasons.reduce((n, r) => n + r.rejects, 0), (await db.sql`select count(*)::int as n from data.ingest_rejects r, unnest(r.reasons)`)[0].n)
})

test('the same payload with other reasons is another reject', async () => {
  const row = { employee_id: 1, employee_name: 'A', hiring_date: '2021-01-01T00:00:00Z', department_id: 99, job_id: 99 }
  await ingest('employees', [row])
  await ingest('jobs', [{ job_id: 99, job_name: 'Ninety-nine' }])
  // Now only the department is unknown: another reason, so both entries stay.
  const again = await ingest('employees', [row])
  assert.equal(again.rejected, 1)
  assert.deepEqual((await log('employees')).map((r) => r.reasons), [
    ['unknown_reference:department_id', 'unknown_reference:job_id'], ['unknown_reference:department_id']])
  await db.sql`delete from data.ingest_rejects where table_name = 'employees'`
})

test('replay_rejects keeps the rejects that still fail, and prints only its summary', async () => {
  const rows = [{ employee_id: 5, employee_name: 'B', hiring_date: '2021-02-01T00:00:00Z', department_id: 555, job_id: 1 }]
  await ingest('employees', rows)
  await ingest('employees', rows)
  const before = await log('employees')
  assert.equal(before.length, 1)
  const notices: string[] = []
  const sql = connect(db.url, { max: 1, onnotice: (n) => notices.push(n.message) })
  try {
    await sql`call replay_rejects('employees')`
    await sql`call replay_rejects('employees')`
  } finally {
    await sql.end()
  }
  assert.deepEqual((await log('employees')).map((r) => [r.batch_id, r.position]), before.map((r) => [r.batch_id, r.position]))
  assert.equal(notices.length, 2, notices.join('\n'))
  for (const n of notices) assert.match(n, /^replay batch \d+: /)
})
