// The caps (sql/procedures/760-internal.bounds.sql), property-tested against a model written
// here from their documentation (docs/security.md "What clients can make the database hold is bounded",
// the Configuration table, and the SQL file's comments):
//   set_caps     runner.set_caps on generated objects: 22023 for a value that is no whole
//                number >= 1 (up to 15 digits), 23514 for a name that is no cap, else
//                internal.caps holds exactly the caps given (the others back to their defaults);
//   ingest log   generated sequences of batches into two tables under generated caps: after
//                every batch the log (which batches, how many rejects each) equals the model
//                (every 32nd batch id prunes its table to the newest INGEST_LOG_MAX_BATCHES
//                batches, then drops the batches older than the one holding the newest
//                INGEST_LOG_MAX_REJECTS-th reject), and each reject's payload is kept whole up to
//                REJECT_PAYLOAD_MAX_BYTES (its stored size, as pg_column_size measures it) and
//                beyond is a stub (a prefix of a quarter of the cap in characters, the size in
//                bytes and the SHA-256 of its text);
//   keys         generated key sequences under IDEMPOTENCY_MAX_KEYS: the newest N stay.
// `npm test` runs it with a fixed seed; `npm run fuzz` longer (FUZZ_SEED, FUZZ_SCALE).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import fc from 'fast-check'
import { freshDatabase } from '../support.ts'

const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const scale = Number(process.env.FUZZ_SCALE ?? 1)
const runs = (n: number) => ({ seed, numRuns: Math.ceil(n * scale), includeErrorInReport: true })

const db = await freshDatabase()
const { sql } = db

const CAPS = ['reject_payload_max_bytes', 'ingest_log_max_batches', 'ingest_log_max_rejects', 'idempotency_max_keys']
const codeOf = (err: unknown) => (err as { code?: string }).code

test('runner.set_caps refuses a JSON null as it refuses any value that is no whole number (22023; found by the property below: it was 23502)', async () => {
  await assert.rejects(sql`select runner.set_caps(${sql.json({ reject_payload_max_bytes: null })})`, { code: '22023' })
})

test('runner.set_caps: internal.caps holds exactly the caps given, or the call is refused with the model code', async () => {
  const name = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...CAPS) }, { weight: 1, arbitrary: fc.constantFrom('max_keys', 'Ingest_log_max_batches', '') })
  const value = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 10_000_000 }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(0, -1, 1.5, 1e15 - 1, 1e15, '7', '007', ' 7', '+7', '1e3', 'abc', '', true, null, [], {}) },
  )
  // A value as jsonb_each_text writes it, and whether it is a whole number >= 1 of up to 15 digits.
  const asText = (v: unknown) => (v === null ? null : typeof v === 'string' ? v : JSON.stringify(v))
  const whole = (v: unknown) => {
    const t = asText(v)
    return t !== null && /^[0-9]{1,15}$/.test(t) && BigInt(t) >= 1n
  }
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(name, value), { maxLength: 5 }), fc.array(fc.tuple(fc.constantFrom(...CAPS), fc.integer({ min: 1, max: 99 })), { maxLength: 4 }), async (given, before) => {
      await sql`select runner.set_caps(${sql.json(Object.fromEntries(before))})`
      const state = async () => Object.fromEntries((await sql<{ name: string; value: string }[]>`select name, value::text from internal.caps`).map((r) => [r.name, r.value]))
      const previous = await state()
      const caps = Object.fromEntries(given) // (the last of a name wins, as in jsonb)
      const outcome = await sql`select runner.set_caps(${sql.json(caps as never)})`.then(() => undefined, codeOf)
      const values = Object.values(caps)
      const expected = values.some((v) => !whole(v)) ? '22023' : Object.keys(caps).some((k) => !CAPS.includes(k)) ? '23514' : undefined
      assert.equal(outcome, expected, JSON.stringify(caps))
      assert.deepEqual(await state(), expected ? previous : Object.fromEntries(Object.entries(caps).map(([k, v]) => [k, String(BigInt(asText(v)!))])))
    }),
    runs(300),
  )
})

// ---- the ingest log ----
interface Batch {
  id: bigint
  table: string
  rejects: number
}
/** The log after the cap trigger fires on batch `id` of `table` (it fires on the insert of the batch row, before its rejects). */
function prune(log: Batch[], table: string, maxBatches: number, maxRejects: number): Batch[] {
  const mine = log.filter((b) => b.table === table).sort((a, b) => (a.id > b.id ? -1 : 1)) // newest first
  let keep = new Set(mine.slice(0, maxBatches).map((b) => b.id))
  const rejects = mine.filter((b) => keep.has(b.id)).flatMap((b) => Array<bigint>(b.rejects).fill(b.id)) // newest first
  if (rejects.length > maxRejects) keep = new Set([...keep].filter((id) => id >= rejects[maxRejects]))
  return log.filter((b) => b.table !== table || keep.has(b.id))
}
/** The size of a value as a row holds it, from its size as a lone value (pg_column_size(x::jsonb)):
 *  a row stores a value of up to 126 bytes with a 1-byte length header, not 4 (PostgreSQL's
 *  short varlena; the trigger sees the row's value). */
const inRow = (size: number) => (size - 4 + 1 <= 127 ? size - 3 : size)
/** The payload as stored: whole up to the cap (its stored size), else the documented stub. */
function stored(text: string, size: number, cap: number): unknown {
  if (inRow(size) <= cap) return JSON.parse(text)
  return {
    truncated: true,
    bytes: Buffer.byteLength(text),
    sha256: createHash('sha256').update(text).digest('hex'),
    prefix: [...text].slice(0, Math.floor(cap / 4)).join(''),
  }
}

let unique = 0
const textArb = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 200 }).map((s) => s.replaceAll('\0', '0')), fc.constantFrom('é'.repeat(150), 'x'.repeat(400), '😀'.repeat(90)))
const batchArb = fc.record({
  table: fc.constantFrom('departments', 'jobs'),
  valid: fc.integer({ min: 1, max: 2 }), // (a batch has a row at least)
  rejected: fc.array(textArb, { maxLength: 4 }),
})

test('the ingest log and the reject payloads after generated batches equal the model', async () => {
  let prunings = 0
  let stubs = 0
  await fc.assert(
    fc.asyncProperty(
      fc.record(
        {
          ingest_log_max_batches: fc.integer({ min: 1, max: 6 }),
          ingest_log_max_rejects: fc.integer({ min: 1, max: 12 }),
          reject_payload_max_bytes: fc.integer({ min: 8, max: 400 }),
        },
        { requiredKeys: ['ingest_log_max_batches', 'ingest_log_max_rejects'] },
      ),
      fc.array(batchArb, { minLength: 20, maxLength: 70 }),
      async (caps, batches) => {
        await sql`select runner.set_caps(${sql.json(caps)})`
        await sql`delete from data.ingest_batches`
        let pruned = false
        const payloadCap = caps.reject_payload_max_bytes ?? 1024
        let log: Batch[] = []
        const payloads = new Map<string, unknown>() // (batch, position) -> the stored payload the model expects
        for (const b of batches) {
          const key = b.table === 'jobs' ? 'job' : 'department'
          const rows: object[] = [
            ...Array.from({ length: b.valid }, (_, i) => ({ [`${key}_id`]: i + 1, [`${key}_name`]: `${key} ${i + 1}` })),
            // unique, so that no reject repeats another (770-internal.reject_dedupe.sql)
            ...b.rejected.map((text) => ({ [`${key}_id`]: `bad ${++unique}`, [`${key}_name`]: text })),
          ]
          const [out] = await sql<{ batch_id: string; rejected: number }[]>`call ingest_batch(${b.table}, ${sql.json(rows as never)})`
          assert.equal(out.rejected, b.rejected.length)
          const id = BigInt(out.batch_id)
          log.push({ id, table: b.table, rejects: 0 })
          if (id % 32n === 0n) {
            const before = log.length
            log = prune(log, b.table, caps.ingest_log_max_batches, caps.ingest_log_max_rejects)
            pruned ||= log.length < before
          }
          log.find((x) => x.id === id)!.rejects = b.rejected.length
          for (let i = 0; i < rows.length; i++) {
            if (i < b.valid) continue
            const [m] = await sql<{ size: number; text: string }[]>`select pg_column_size(${sql.json(rows[i] as never)}::jsonb) as size, ${sql.json(rows[i] as never)}::jsonb::text as text`
            payloads.set(`${id} ${i + 1}`, stored(m.text, m.size, payloadCap))
          }
          const got = await sql<{ id: string; table_name: string; rejects: number }[]>`
            select b.batch_id::text as id, b.table_name, (select count(*)::int from data.ingest_rejects r where r.batch_id = b.batch_id) as rejects
              from data.ingest_batches b order by b.batch_id`
          assert.deepEqual(
            got.map((g) => [g.id, g.table_name, g.rejects]),
            log.map((x) => [String(x.id), x.table, x.rejects]),
            `after batch ${id} (${b.table}) under ${JSON.stringify(caps)}`,
          )
        }
        const kept = await sql<{ key: string; payload: unknown }[]>`select batch_id::text || ' ' || position as key, payload from data.ingest_rejects`
        for (const { key, payload } of kept) assert.deepEqual(payload, payloads.get(key), `payload ${key} under a cap of ${payloadCap} bytes`)
        if (pruned) prunings++
        stubs += kept.filter((k) => (k.payload as { truncated?: boolean }).truncated === true).length
      },
    ),
    runs(25),
  )
  console.log(`# ingest log: ${prunings} of ${Math.ceil(25 * scale)} sequences pruned, ${stubs} stubbed payloads kept`)
})

test('a reject payload at the cap, one byte under and one over: whole, whole, stub', async () => {
  await fc.assert(
    fc.asyncProperty(textArb, fc.integer({ min: -1, max: 1 }), async (text, delta) => {
      const row = { job_id: `bad ${++unique}`, job_name: text }
      const [m] = await sql<{ size: number; text: string }[]>`select pg_column_size(${sql.json(row)}::jsonb) as size, ${sql.json(row)}::jsonb::text as text`
      const cap = inRow(m.size) + delta
      await sql`select runner.set_caps(${sql.json({ reject_payload_max_bytes: cap })})`
      const [out] = await sql<{ batch_id: string }[]>`call ingest_batch('jobs', ${sql.json([row])})`
      const [{ payload }] = await sql<{ payload: unknown }[]>`select payload from data.ingest_rejects where batch_id = ${out.batch_id}`
      assert.deepEqual(payload, stored(m.text, m.size, cap), `${m.size} bytes under a cap of ${cap}`)
    }),
    runs(60),
  )
})

test('idempotency keys: the newest IDEMPOTENCY_MAX_KEYS stay', async () => {
  let n = 0
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 15 }), async (cap, count) => {
      await sql`select runner.set_caps(${sql.json({ idempotency_max_keys: cap })})`
      await sql`delete from data.idempotency_keys`
      const keys: string[] = []
      for (let i = 0; i < count; i++) {
        const key = `key ${++n}`
        keys.push(key)
        await sql`insert into data.idempotency_keys (idempotency_key, request_hash, response) values (${key}, 'h', '{}')`
        const got = (await sql<{ k: string }[]>`select idempotency_key as k from data.idempotency_keys order by created_at`).map((r) => r.k)
        assert.deepEqual(got, keys.slice(-cap), `cap ${cap}`)
      }
    }),
    runs(40),
  )
})
