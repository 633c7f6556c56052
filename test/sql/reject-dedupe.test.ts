// A reload does not log the same rejects again (sql/procedures/770-internal.reject_dedupe.sql),
// and replay_rejects speaks only its summary.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { connect } from '../../src/database.ts'
import { freshDatabase } from '../support.ts'
import { mutatedRow, validRow } from '../generators.ts'
import { toJson, type Json } from '../oracle.ts'

const db = await freshDatabase()

interface Outcome { batch_id: string; received: number; inserted: number; unchanged: number; rejected: number }
const ingest = async (table: string, rows: unknown) =>
  (await db.sql<Outcome[]>`call ingest_batch(${table}, ${db.sql.json(rows as never)})`)[0]
// The current entries (an entry rejected again stays, marked repeated_in, as history).
const log = (table: string) => db.sql<{ batch_id: string; position: number; payload: unknown; reasons: string[] }[]>`
  select batch_id::text, position::integer, payload, reasons from data.ingest_rejects
   where table_name = ${table} and repeated_in is null order by batch_id, position`

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
  assert.equal(stats[0].s.reasons.reduce((n, r) => n + r.rejects, 0), (await db.sql`select count(*)::int as n from data.ingest_rejects r, unnest(r.reasons) where r.repeated_in is null`)[0].n)
  // The older entries stay with their batches, each marked with the batch that rejected it next.
  const history = await db.sql`select batch_id::text, repeated_in::text from data.ingest_rejects where table_name = 'jobs' and repeated_in is not null order by 1, position`
  assert.deepEqual(history.map((r) => [r.batch_id, r.repeated_in]), [
    [first.batch_id, second.batch_id], [first.batch_id, second.batch_id], [first.batch_id, second.batch_id],
    [second.batch_id, third.batch_id], [second.batch_id, third.batch_id], [second.batch_id, third.batch_id]])
})

// The reject log is an audit trail: anyone may send a row someone else's batch rejected, and
// that must not take the entry away from that batch (GET /ingest/batches/{id}/rejects).
test("a row sent again leaves the older batch's record of it as it was", async () => {
  const record = async (batchId: string) => {
    const [{ r }] = await db.sql<{ r: { rejected: number; rejects: Record<string, unknown>[] } }[]>`select api.batch_rejects(${batchId}) as r`
    return { rejected: r.rejected, rejects: r.rejects.map(({ position, row, reasons, rejected_at }) => ({ position, row, reasons, rejected_at })) }
  }
  const theirs = await ingest('departments', [{ department_id: 'x', department_name: 'Theirs' }, { department_id: 7, department_name: '' }])
  const before = await record(theirs.batch_id)
  assert.equal(before.rejects.length, 2)
  const mine = await ingest('departments', [{ department_id: 'x', department_name: 'Theirs' }])
  assert.deepEqual(await record(theirs.batch_id), before)
  assert.equal((await record(mine.batch_id)).rejects.length, 1, 'the new batch keeps its own verdict')
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

// Generated reloads: batches drawn (with repeats) from a small pool of valid and broken rows,
// some sent one after another, some at once. The model is built from each batch's own verdict,
// read right after it (a batch never drops its own entries): a pending (payload, reasons) is
// current in the newest batch that rejected it, as many times as that batch has it (the older
// entries stay as history, marked repeated_in).
describe('reject log under generated reloads', () => {
  const seed = Number(process.env.FUZZ_SEED ?? 20261201)
  const scale = Number(process.env.FUZZ_SCALE ?? 1)
  const keys = fc.integer({ min: 1, max: 6 })
  const pool = fc.array(fc.oneof(validRow('jobs', keys), mutatedRow('jobs', keys)), { minLength: 2, maxLength: 8 })
  const steps = (n: number) => fc.array(fc.record({
    rows: fc.array(fc.nat(n - 1), { minLength: 1, maxLength: 6 }),
    together: fc.integer({ min: 1, max: 3 }),
  }), { minLength: 1, maxLength: 6 })
  type Key = string
  const pending = async () => {
    const entries = await db.sql<{ batch_id: string; key: Key; n: number }[]>`
      select batch_id::text, payload::text || ' ' || reasons::text as key, count(*)::int as n
        from data.ingest_rejects where table_name = 'jobs' and replayed_at is null and repeated_in is null group by 1, 2`
    return new Map(entries.map((e) => [`${e.batch_id} ${e.key}`, e.n]))
  }
  const verdict = async (batchId: string) => db.sql<{ key: Key; n: number }[]>`
    select payload::text || ' ' || reasons::text as key, count(*)::int as n
      from data.ingest_rejects where batch_id = ${batchId} group by 1`
  const send = (rows: Json[]) => db.sql<Outcome[]>`call ingest_batch('jobs', ${`[${rows.map(toJson).join(',')}]`})`.then((r) => r[0])

  test('one after another: each rejected row is logged once, under the newest batch that rejected it', async () => {
    await fc.assert(fc.asyncProperty(pool.chain((p) => fc.tuple(fc.constant(p), steps(p.length))), async ([rows, plan]) => {
      await db.sql`delete from data.ingest_rejects where table_name = 'jobs'`
      const model = new Map<Key, { batch: string; n: number }>()
      for (const step of plan) {
        const out = await send(step.rows.map((i) => rows[i]))
        const own = await verdict(out.batch_id)
        assert.equal(own.reduce((n, r) => n + r.n, 0), out.rejected, 'the batch logs every row it rejected')
        for (const r of own) model.set(r.key, { batch: out.batch_id, n: r.n })
      }
      const expected = new Map([...model].map(([key, v]) => [`${v.batch} ${key}`, v.n]))
      assert.deepEqual(await pending(), expected)
    }), { seed, numRuns: Math.ceil(40 * scale) })
  })

  test('at once: no batch fails (no deadlock), and the next repeat leaves one entry per row', async () => {
    await fc.assert(fc.asyncProperty(pool.chain((p) => fc.tuple(fc.constant(p), steps(p.length))), async ([rows, plan]) => {
      await db.sql`delete from data.ingest_rejects where table_name = 'jobs'`
      for (const step of plan) {
        // `together` copies of the batch at once: the same bad rows in concurrent transactions.
        const outs = await Promise.all(Array.from({ length: step.together }, () => send(step.rows.map((i) => rows[i]))))
        for (const o of outs) assert.ok(o.batch_id, 'every batch answers')
      }
      // Whatever concurrent batches skipped (SKIP LOCKED), a repeat on its own removes.
      const last = await send(rows)
      const own = await verdict(last.batch_id)
      const keysOfLast = new Set(own.map((r) => r.key))
      for (const [entry] of await pending()) {
        const [batch, ...key] = entry.split(' ')
        if (keysOfLast.has(key.join(' '))) assert.equal(batch, last.batch_id, `an older entry of a row the last batch rejected again: ${entry}`)
      }
    }), { seed, numRuns: Math.ceil(25 * scale) })
  })
})
