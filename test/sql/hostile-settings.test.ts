// A hostile member of the API role sets the hirebase.* caps in its own session before calling
// api.ingest_batch: the owner's triggers read them (internal.cap) while running as the owner.
// Lowering a cap must not let it erase the ingest log of others; raising it must not lift the bound.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { connect } from '../../src/database.ts'
import { freshDatabase, testLoginRole } from '../support.ts'

const db = await freshDatabase()
const hostileRole = await testLoginRole('capper')
await db.sql.unsafe(`grant ${db.roles.api} to ${hostileRole.name}`)
const hostile = connect(hostileRole.urlFor(db.name), { max: 1, onnotice: () => {} })

describe('the hirebase.* caps as set by a caller', () => {
  test('a caller lowering ingest_log_max_batches does not delete the other batches and their rejects', async () => {
    // Someone else's batch, with a logged reject.
    await db.sql`call api.ingest_batch('jobs', ${'[{"job_id": 1, "job_name": "Ok"}, {"job_id": 2}]'}::text)`
    const before = await db.sql`select batch_id from data.ingest_batches order by batch_id`
    await hostile`set hirebase.ingest_log_max_batches = 1`
    await hostile`set hirebase.ingest_log_max_rejects = 1`
    for (let i = 0; i < 40; i++) await hostile`call api.ingest_batch('jobs', ${'[{"job_id": 1, "job_name": "Ok"}]'}::text)`
    const left = await db.sql`select batch_id from data.ingest_batches where batch_id = any(${before.map((b) => b.batch_id)})`
    assert.equal(left.length, before.length, 'the batches logged before the caller\'s were deleted')
    const [{ n }] = await db.sql`select count(*)::int as n from data.ingest_rejects`
    assert.equal(n, 1, 'the reject logged before was deleted')
  })

  test('a caller raising reject_payload_max_bytes does not store megabytes per reject', async () => {
    await hostile`set hirebase.reject_payload_max_bytes = 100000000`
    const big = randomBytes(1_000_000).toString('base64')  // (incompressible: TOAST cannot hide it)
    await hostile`call api.ingest_batch('jobs', ${JSON.stringify([{ job_id: 5, job_name: 'n', junk: big }])}::text)`
    const [{ bytes }] = await db.sql`select max(pg_column_size(payload))::int as bytes from data.ingest_rejects`
    assert.ok(bytes <= 4096, `a reject stored ${bytes} bytes`)
  })

  test('the caps are the owner\'s (internal.caps), as runner.set_caps (the API server at start) writes them', async () => {
    await db.sql`select runner.set_caps(${db.sql.json({ ingest_log_max_batches: 3, reject_payload_max_bytes: 2048 })})`
    await hostile`set hirebase.ingest_log_max_batches = 1`
    const [{ batches, payload, keys }] = await db.sql`
      select internal.cap('ingest_log_max_batches', 100000) as batches, internal.cap('reject_payload_max_bytes', 1024) as payload,
             internal.cap('idempotency_max_keys', 10000) as keys`
    assert.deepEqual([Number(batches), Number(payload), Number(keys)], [3, 2048, 10000])
    await assert.rejects(db.sql`select runner.set_caps(${db.sql.json({ idempotency_max_keys: 0 })})`, { code: '22023' })
    await assert.rejects(hostile`select runner.set_caps(${hostile.json({ idempotency_max_keys: 1 })})`, (err: { code?: string }) => ['42501', '3F000'].includes(err.code ?? ''))
    // A server started without a cap's variable puts it back to the default.
    await db.sql`select runner.set_caps(${db.sql.json({ reject_payload_max_bytes: 4096 })})`
    const [after] = await db.sql`select internal.cap('ingest_log_max_batches', 100000) as batches, internal.cap('reject_payload_max_bytes', 1024) as payload`
    assert.deepEqual([Number(after.batches), Number(after.payload)], [100000, 4096])
  })

  test('a caller setting hirebase.replaying does not skip the reject de-duplication for its batches', async () => {
    const rejects = async () => {
      const [{ s }] = await db.sql<{ s: { reasons: { code: string; rejects: number }[] } }[]>`select api.stats() as s`
      return s.reasons.find((r) => r.code === 'not_integer:job_id')?.rejects ?? 0
    }
    const before = await rejects()
    const row = '[{"job_id": "replaying", "job_name": "Flood"}]'
    await hostile.begin(async (tx) => {
      await tx`select set_config('hirebase.replaying', 'on', true)`
      for (let i = 0; i < 3; i++) await tx`call api.ingest_batch('jobs', ${row}::text)`
    })
    await hostile`set hirebase.replaying = on`
    for (let i = 0; i < 3; i++) await hostile`call api.ingest_batch('jobs', ${row}::text)`
    await hostile`reset hirebase.replaying`
    assert.equal(await rejects(), before + 1, 'the same rejected row was logged more than once')
  })

  test('ends the session', async () => { await hostile.end() })
})
