// The API server's life: the database going away and coming back, and graceful shutdown.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { freshDatabase, holdTableLock, listenApi, ownPostgres, startServeScript, timed } from '../support.ts'

test('database down: 503 quickly, no crash; back up: the server recovers by itself', { timeout: 120_000 }, async () => {
  // A server of its own, so stopping it does not disturb the other test files.
  const { pg, url } = await ownPostgres('restart')
  const { base, close } = await listenApi({ databaseUrl: url })
  try {
    const health = () => fetch(`${base}/health`).then((r) => r.status)
    const ingest = () =>
      fetch(`${base}/tables/jobs/rows`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '[{"job_id": 1, "job_name": "x"}]',
      })
    assert.equal(await health(), 200)

    await pg.stop()
    const down = await timed(health())
    assert.equal(down.value, 503)
    assert.ok(down.ms < 7000, `took ${down.ms} ms`)
    const refused = await ingest()
    assert.equal(refused.status, 503)
    assert.equal((await refused.json()).error.code, 'database_unavailable')

    await pg.start()
    let status = 0
    for (let i = 0; i < 20 && status !== 200; i++) {
      status = await health()
      if (status !== 200) await new Promise((r) => setTimeout(r, 250))
    }
    assert.equal(status, 200)
    assert.equal((await ingest()).status, 200)
  } finally {
    await close()
  }
})

test('SIGTERM: in-flight batches finish, then the server exits 0', { timeout: 60_000 }, async () => {
  const db = await freshDatabase()
  const serve = await startServeScript({ DATABASE_URL: db.url, LOG_LEVEL: 'warn' })
  const { port } = serve
  assert.match(serve.output(), /API on http:\/\/127\.0\.0\.1/)

  // Hold the jobs table's ingest lock so the request stays in flight until we let go.
  const lock = await holdTableLock(db.url, 'jobs')
  await new Promise((r) => setTimeout(r, 100))
  const inFlight = fetch(`http://127.0.0.1:${port}/tables/jobs/rows`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '[{"job_id": 5, "job_name": "In flight"}]',
  })
  for (let i = 0; i < 50; i++) {
    const [{ n }] =
      await db.sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and application_name = 'hirebase-api'`
    if (n > 0) break
    await new Promise((r) => setTimeout(r, 100))
  }
  const exited = serve.stop()
  await new Promise((r) => setTimeout(r, 300))
  await lock.release()

  const res = await inFlight
  assert.equal(res.status, 200)
  assert.equal((await res.json()).inserted, 1)
  assert.equal(await exited, 0, serve.output())
  await assert.rejects(fetch(`http://127.0.0.1:${port}/health`))
})
