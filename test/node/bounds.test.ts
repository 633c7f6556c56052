// Bounded growth: a flood of rejected rows with fresh Idempotency-Keys leaves the database
// and the server's memory bounded by the caps; a client over the rate limit gets 429 with
// Retry-After (503 with Retry-After: test/node/faults-waits.test.ts); and without pg_cron the
// server prunes the ingest log itself.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { limitsFromEnv } from '../../src/server.ts'
import { freshDatabase, startServeScript } from '../support.ts'

const db = await freshDatabase()
const { sql } = db

/** scripts/serve.mjs on its own port, with `env`; resolves once it listens. */
async function serve(env: Record<string, string>) {
  const server = await startServeScript({ DATABASE_URL: db.url, BACKUP_DIR: await mkdtemp(join(tmpdir(), 'hb-bounds-')), ...env })
  return { base: server.base, child: server.child, log: server.output }
}

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024
const logBytes = async () =>
  (
    await sql`select (pg_total_relation_size('data.ingest_batches') + pg_total_relation_size('data.ingest_rejects')
  + pg_total_relation_size('data.idempotency_keys'))::bigint as bytes`
  )[0].bytes as number

test(
  'without pg_cron the server prunes the ingest log itself (RETENTION_DAYS); a flood of rejects stays within the caps',
  { timeout: 240_000 },
  async () => {
    const [{ old }] = await sql`insert into data.ingest_batches (table_name, source, started_at, finished_at)
    values ('jobs', 'sql', now() - interval '200 days', now() - interval '200 days') returning batch_id as old`
    const caps = {
      REJECT_PAYLOAD_MAX_BYTES: '512',
      INGEST_LOG_MAX_BATCHES: '40',
      INGEST_LOG_MAX_REJECTS: '4000',
      IDEMPOTENCY_MAX_KEYS: '40',
      RATE_LIMIT_MAX: '100000',
    }
    const { base, child, log } = await serve({ ...caps, RETENTION_DAYS: '90' })
    const [gone] = await sql`select 1 from data.ingest_batches where batch_id = ${old}`
    assert.equal(gone, undefined, `the 200-day-old batch is still there: ${log()}`)
    assert.match(log(), /housekeeping \(in the server: no pg_cron job for it\)/)

    const before = await logBytes()
    const rssBefore = rssMb(child.pid!)
    let rssPeak = rssBefore
    // 150 requests of 500 rejected rows of ~1.5 KB (~750 KB each, ~110 MB in all), each with a new key.
    const body = JSON.stringify(Array.from({ length: 500 }, (_, i) => ({ job_id: `bad-${i}`, job_name: 'y'.repeat(1500) })))
    for (let round = 0; round < 30; round++) {
      await Promise.all(
        Array.from({ length: 5 }, async () => {
          const r = await fetch(`${base}/tables/jobs/rows`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
            body,
          })
          assert.equal(r.status, 200)
          const json = await r.json()
          assert.equal(json.rejected, 500)
        }),
      )
      rssPeak = Math.max(rssPeak, rssMb(child.pid!))
    }
    const grown = ((await logBytes()) - before) / 1024 / 1024
    const [counts] = await sql`select (select count(*) from data.ingest_batches where table_name = 'jobs')::int as batches,
    (select count(*) from data.ingest_rejects where table_name = 'jobs')::int as rejects,
    (select count(*) from data.idempotency_keys)::int as keys,
    (select max(pg_column_size(payload)) from data.ingest_rejects)::int as payload`
    console.log(
      `flood: ingest log +${grown.toFixed(1)} MB, server RSS ${rssBefore.toFixed(0)} -> peak ${rssPeak.toFixed(0)} MB, ${JSON.stringify(counts)}`,
    )
    assert.ok(counts.batches <= 40 + 32, `batches ${counts.batches}`)
    assert.ok(counts.rejects <= 4000 + 32 * 500, `rejects ${counts.rejects}`)
    assert.ok(counts.keys <= 40 + 5, `keys ${counts.keys}`) // (+5: concurrent requests do not see each other's new keys)
    assert.ok(counts.payload <= 512, `payload ${counts.payload}`)
    // Without the caps (all set huge) the log grew by ~153 MB here and the RSS by ~173 MB: each reject stored twice (row and replayable response).
    // With them, 74.7 MB: the same rows sent again keep their older entries, each marked with the batch
    // that rejected it next (an updated row version until vacuum); 500 new rows per request, as a flood
    // of distinct bad rows always had (48.2 MB here before 0009).
    assert.ok(grown < 90, `the ingest log grew by ${grown.toFixed(1)} MB`)
    assert.ok(rssPeak - rssBefore < 250, `server RSS ${rssBefore.toFixed(0)} -> ${rssPeak.toFixed(0)} MB`)
    // What is kept of a capped payload: a prefix, its size and its SHA-256.
    const [{ payload }] = await sql`select payload from data.ingest_rejects where table_name = 'jobs' order by batch_id desc limit 1`
    assert.equal(payload.truncated, true)
    assert.match(payload.sha256, /^[0-9a-f]{64}$/)
    assert.ok(payload.bytes > 1500 && payload.prefix.startsWith('{"job_id": "bad-'), JSON.stringify(payload).slice(0, 200))
  },
)

test('over the rate limit: 429 with Retry-After and a JSON error', { timeout: 60_000 }, async () => {
  const { base } = await serve({ RATE_LIMIT_MAX: '20', RATE_LIMIT_WINDOW_SECONDS: '60' })
  const answers = await Promise.all(Array.from({ length: 40 }, () => fetch(`${base}/health`)))
  const limited = answers.filter((r) => r.status === 429)
  assert.equal(answers.filter((r) => r.status === 200).length, 20)
  assert.equal(limited.length, 20)
  assert.ok(Number(limited[0].headers.get('retry-after')) > 0)
  assert.equal((await limited[0].json()).error.code, 'rate_limited')
  assert.throws(() => limitsFromEnv({ RATE_LIMIT_MAX: '0' }), /RATE_LIMIT_MAX must be a whole number >= 1/)
})
