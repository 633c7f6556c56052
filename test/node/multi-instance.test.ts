// Two API server processes (scripts/serve.mjs) against one database, as behind a load
// balancer: concurrent batches whose Idempotency-Key values both instances see are counted
// once, a queued backup is taken by exactly one of the two backup runners (and a direct one
// beside it gets a file of its own), and SIGTERM to one instance lets its in-flight batches
// finish while the other keeps serving.
// Long, as one file: both scenarios share the two server processes and their logs.
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import { connect } from '../../src/database.ts'
import { apiConnection } from '../../src/roles.ts'
import { batch, PARENTS } from '../generators.ts'
import { toJson } from '../oracle.ts'
import { freshDatabase, startServeScript, type TestDatabase } from '../support.ts'

interface Instance {
  name: string
  base: string
  child: ChildProcess
  output: () => string
  exited: Promise<number | null>
}

// (At the top level: freshDatabase drops the database when the file ends.)
const db: TestDatabase = await freshDatabase()
const backupDir = await mkdtemp(join(tmpdir(), 'hirebase-multi-'))
let a: Instance
let b: Instance

/** Starts scripts/serve.mjs on a port of its own choosing (PORT=0: two start at once). */
async function startInstance(name: string): Promise<Instance> {
  const server = await startServeScript({
    DATABASE_URL: db.url,
    PORT: '0',
    BACKUP_DIR: backupDir,
    // info: the backup runner's "backup request done" lines tell which instance took a request.
    LOG_LEVEL: 'info',
    // Batches queue behind a lock this test holds, and for the pool; on a loaded machine
    // the defaults' few seconds could end them.
    LOCK_TIMEOUT_MS: '60000',
    STATEMENT_TIMEOUT_MS: '60000',
    POOL_TIMEOUT_MS: '60000',
  })
  return { name, ...server }
}

type Answer = { status: number; body: Record<string, unknown> }

async function post(instance: Instance, table: string, body: string, key?: string): Promise<Answer> {
  const res = await fetch(`${instance.base}/tables/${table}/rows`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** The employees batches: half valid, half broken rows, ids from a pool small enough to collide across batches. */
const batches = (seed: number, count: number) =>
  fc.sample(batch('employees', 1, 150, 1500), { seed, numRuns: count }).map((rows) => `[${rows.map(toJson).join(',')}]`)

/** Waits until `n` of the API's statements wait on a lock (advisory locks show as wait_event_type 'Lock'). */
async function waitForLockWaiters(n: number) {
  let waiting = 0
  for (let i = 0; i < 300 && waiting < n; i++) {
    ;[{ waiting }] = await db.sql<{ waiting: number }[]>`
      select count(*)::int as waiting from pg_stat_activity
       where datname = current_database() and wait_event_type = 'Lock' and application_name = 'hirebase-api'`
    if (waiting < n) await new Promise((r) => setTimeout(r, 100))
  }
  assert.ok(waiting >= n, `${waiting} API statements wait on the lock, expected ${n}`)
}

/** Every row counted once: the log, the table and the counts the triggers keep agree. */
async function assertCountedOnce(keys: number) {
  const [log] = await db.sql<{ batches: number; keys: number; inserted: number; rows: number; counted: number; by_department: number }[]>`
    select (select count(*)::int from data.ingest_batches where table_name = 'employees') as batches,
           (select count(*)::int from data.idempotency_keys where idempotency_key like 'mi-%') as keys,
           (select coalesce(sum(inserted), 0)::int from data.ingest_batches where table_name = 'employees') as inserted,
           (select count(*)::int from data.employees) as rows,
           (select coalesce(sum(q1 + q2 + q3 + q4), 0)::int from data.hire_counts) as counted,
           (select coalesce(sum(hires), 0)::int from data.hires_by_department) as by_department`
  assert.equal(log.batches, keys, 'one ingest batch per Idempotency-Key')
  assert.equal(log.keys, keys)
  assert.equal(log.inserted, log.rows, 'the batches inserted as many rows as employees holds')
  assert.equal(log.counted, log.rows, 'data.hire_counts counts every employee once')
  assert.equal(log.by_department, log.rows, 'data.hires_by_department counts every employee once')
  // The safety net recount finds nothing to correct.
  const [{ corrected }] = await db.sql<{ corrected: number }[]>`select api.refresh_reports() as corrected`
  assert.equal(corrected, 0)
}

/** All answers to one key: the first one made, the others its replay, word for word. */
function assertOneAnswer(key: string, answers: Answer[]) {
  for (const answer of answers) assert.equal(answer.status, 200, `${key}: ${JSON.stringify(answer.body)}`)
  const fresh = answers.filter((x) => !x.body.replayed)
  assert.equal(fresh.length, 1, `${key}: ${fresh.length} answers were not replays`)
  const { replayed: _, ...first } = fresh[0].body
  for (const answer of answers) {
    const { replayed: _r, ...rest } = answer.body
    assert.deepEqual(rest, first, `${key}: a replay differs from the first answer`)
  }
  const { received, inserted, unchanged, rejected } = first as Record<string, number>
  assert.equal(inserted + unchanged + rejected, received, `${key}: every row has one verdict`)
}

const logLines = (instance: Instance, msg: string) =>
  instance
    .output()
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))

before(async () => {
  // Started together, as a deployment starts them (the last test is the example of what that found).
  ;[a, b] = await Promise.all([startInstance('A'), startInstance('B')])
  // The parents every generated employee may reference.
  const ids = Array.from({ length: PARENTS }, (_, i) => i + 1)
  assert.equal(
    (await post(a, 'departments', JSON.stringify(ids.map((id) => ({ department_id: id, department_name: `D${id}` }))))).body.inserted,
    PARENTS,
  )
  assert.equal((await post(b, 'jobs', JSON.stringify(ids.map((id) => ({ job_id: id, job_name: `J${id}` }))))).body.inserted, PARENTS)
})

after(async () => {
  for (const instance of [a, b]) if (instance && instance.child.exitCode === null) instance.child.kill('SIGTERM')
  await Promise.all([a?.exited, b?.exited])
  await rm(backupDir, { recursive: true, force: true })
})

test(
  'concurrent batches with shared Idempotency-Key values, a queued backup and a direct one: rows counted once, each backup written once',
  { timeout: 180_000 },
  async () => {
    const bodies = batches(19, 24)
    // Each key goes twice to each instance, all at once; in the middle a backup is queued (as
    // pg_cron does) and another asked of B directly (POST .../backup, written by B itself).
    const sends = bodies.flatMap((body, i) => [a, b, a, b].map((instance) => () => post(instance, 'employees', body, `mi-${i}`)))
    const answers = new Map<string, Answer[]>()
    let queued: number[] = []
    let posted: Promise<Response> | undefined
    await Promise.all(
      sends.map(async (send, n) => {
        if (n === Math.floor(sends.length / 2)) {
          posted = fetch(`${b.base}/tables/employees/backup`, { method: 'POST' })
          ;[{ ids: queued }] = await db.sql<{ ids: number[] }[]>`select api.request_backup('employees') as ids`
        }
        const answer = await send()
        const key = `mi-${Math.floor(n / 4)}`
        answers.set(key, [...(answers.get(key) ?? []), answer])
      }),
    )
    for (const [key, list] of answers) assertOneAnswer(key, list)
    await assertCountedOnce(bodies.length)

    // Both runners were woken by the request's NOTIFY; one takes it.
    assert.equal(queued.length, 1)
    let request: { finished_at: Date | null; file: string | null; error: string | null; worker: string | null } | undefined
    for (let i = 0; i < 600 && !request?.finished_at; i++) {
      ;[request] = await db.sql<
        NonNullable<typeof request>[]
      >`select finished_at, file, error, worker from data.backup_requests where request_id = ${queued[0]}`
      if (!request?.finished_at) await new Promise((r) => setTimeout(r, 100))
    }
    assert.ok(request?.finished_at, 'the queued backup was not finished within 60 s')
    assert.equal(request.error, null)
    const direct = await posted!
    assert.equal(direct.status, 201)
    const { file: directFile } = (await direct.json()) as { file: string }
    // One file per backup asked for: the request's and the direct one's, under distinct names.
    const files = (await readdir(backupDir, { recursive: true })).filter((f) => f.endsWith('.avro')).sort()
    assert.equal(files.length, 2, `backup files: ${files.join(', ')}`)
    assert.notEqual(request.file, directFile)
    for (const file of [request.file!, directFile])
      assert.ok(
        files.some((f) => f.endsWith(file)),
        `${file} is not among ${files.join(', ')}`,
      )
    // Written and finished by one runner: one "done" line across both instances' logs.
    const done = [a, b].flatMap((instance) => logLines(instance, 'backup request done').map(() => instance.name))
    assert.equal(done.length, 1, `"backup request done" logged by ${done.join(', ') || 'no instance'}`)
    assert.equal([a, b].flatMap((instance) => logLines(instance, 'backup request failed')).length, 0)
  },
)

test('SIGTERM one instance mid-load: its in-flight batches finish, the other keeps serving', { timeout: 180_000 }, async () => {
  const [{ n: keysBefore }] = await db.sql<
    { n: number }[]
  >`select count(*)::int as n from data.idempotency_keys where idempotency_key like 'mi-%'`
  const bodies = batches(1919, 9)
  // Hold the employees table's lock, so the batches stay in flight until we let go.
  const holder = connect(db.url, { max: 1 })
  let release = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const holding = holder.begin(async (tx) => {
    await tx`select internal.lock_table('employees')`
    await released
  })
  try {
    await new Promise((r) => setTimeout(r, 200))
    // Keys 0-3 to A only, 4-5 to both: A is stopped with all of them in flight.
    const inFlightA = [0, 1, 2, 3, 4, 5].map((i) => post(a, 'employees', bodies[i], `mi-s${i}`))
    const inFlightB = [4, 5].map((i) => post(b, 'employees', bodies[i], `mi-s${i}`))
    await waitForLockWaiters(8) // all eight: on the table's lock, or on a key another holds
    a.child.kill('SIGTERM')
    for (let i = 0; i < 100 && !a.output().includes('SIGTERM: shutting down'); i++) await new Promise((r) => setTimeout(r, 50))
    assert.match(a.output(), /SIGTERM: shutting down/)
    // B answers while A drains.
    assert.equal((await fetch(`${b.base}/health`)).status, 200)
    release()
    await holding

    const answersA = await Promise.all(inFlightA)
    const answersB = await Promise.all(inFlightB)
    for (const [i, answer] of answersA.entries())
      assert.equal(answer.status, 200, `A's in-flight batch mi-s${i}: ${JSON.stringify(answer.body)}`)
    assert.equal(await a.exited, 0, a.output())
    await assert.rejects(fetch(`${a.base}/health`), 'A no longer listens')
    assertOneAnswer('mi-s4', [answersA[4], answersB[0]])
    assertOneAnswer('mi-s5', [answersA[5], answersB[1]])

    // A client whose instance went away retries on B with the same key: replayed, not ingested again.
    const retried = await post(b, 'employees', bodies[0], 'mi-s0')
    assertOneAnswer('mi-s0', [answersA[0], retried])
    assert.equal(retried.body.replayed, true)
    // And B takes new work.
    for (const i of [6, 7, 8]) assertOneAnswer(`mi-s${i}`, [await post(b, 'employees', bodies[i], `mi-s${i}`)])
    await assertCountedOnce(keysBefore + bodies.length)
  } finally {
    release()
    await holding.catch(() => {})
    await holder.end()
  }
})

test(
  "two servers starting together on a new database both log in: the API login's password is set once",
  { timeout: 120_000 },
  async () => {
    // Found by this file's start of A and B at once: both found the password unset and the
    // second ALTER ROLE failed with "tuple concurrently updated" (XX000), ending that server
    // (1 start in 5 here). The roles are the database's, so unsetting it again is a new database's state.
    const failures: string[] = []
    for (let i = 0; i < 10; i++) {
      await db.sql.unsafe(`alter role "${db.roles.login}" password null`)
      for (const r of await Promise.allSettled([apiConnection(db.url), apiConnection(db.url)])) {
        if (r.status === 'rejected') failures.push(`round ${i}: ${(r.reason as Error).message}`)
      }
    }
    assert.deepEqual(failures, [])
    assert.equal((await post(b, 'jobs', '[{"job_id": 77, "job_name": "After the roles test"}]')).status, 200, 'B still logs in')
  },
)
