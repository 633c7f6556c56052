// The API server's life: the database going away and coming back, and graceful shutdown.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { connect, importEmbeddedPostgres } from '../../src/database.ts'
import { migrate } from '../../src/migrate.ts'
import { projectRoot } from '../../src/paths.ts'
import { buildServer } from '../../src/server.ts'
import { freshDatabase } from '../support.ts'

const freePort = () => new Promise<number>((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number }
    server.close(() => resolve(port))
  })
})

const timed = async <T>(work: Promise<T>) => {
  const started = Date.now()
  const value = await work
  return { value, ms: Date.now() - started }
}

test('database down: 503 quickly, no crash; back up: the server recovers by itself', { timeout: 120_000 }, async () => {
  // A server of its own, so stopping it does not disturb the other test files.
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-restart-'))
  await chmod(dir, 0o755) // as root the server runs as `postgres`, which must reach its data
  const port = await freePort()
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'), port, user: 'postgres', password: 'restart-test', persistent: true,
    createPostgresUser: userInfo().uid === 0, initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='], onLog: () => {}, onError: () => {},
  })
  await pg.initialise()
  await pg.start()
  const url = `postgres://postgres:restart-test@127.0.0.1:${port}/postgres`
  // Migrated first: the server logs in as the database's API login role, which migrating makes.
  await migrate(url).catch(async (err) => { await pg.stop(); throw err })
  const { app, sql } = await buildServer({ databaseUrl: url, logLevel: 'silent', backupDir: join(dir, 'backups') })
  try {
    await app.listen({ host: '127.0.0.1', port: 0 })
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
    const health = () => fetch(`${base}/health`).then((r) => r.status)
    const ingest = () => fetch(`${base}/tables/jobs/rows`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"job_id": 1, "job_name": "x"}]' })
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
    await app.close()
    await sql.end({ timeout: 1 })
    await pg.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('SIGTERM: in-flight batches finish, then the server exits 0', { timeout: 60_000 }, async () => {
  const db = await freshDatabase()
  const port = await freePort()
  const child = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/serve.mjs'], {
    cwd: projectRoot, env: { ...process.env, DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
  })
  let output = ''
  child.stdout.on('data', (d) => { output += d })
  child.stderr.on('data', (d) => { output += d })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  for (let i = 0; i < 400 && !output.includes('API on'); i++) await new Promise((r) => setTimeout(r, 100))
  assert.match(output, /API on http:\/\/127\.0\.0\.1/)

  // Hold the jobs table's ingest lock so the request stays in flight until we let go.
  const holder = connect(db.url, { max: 1 })
  let release = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  const holding = holder.begin(async (tx) => {
    await tx`select internal.lock_table('jobs')`
    await released
  })
  await new Promise((r) => setTimeout(r, 100))
  const inFlight = fetch(`http://127.0.0.1:${port}/tables/jobs/rows`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"job_id": 5, "job_name": "In flight"}]',
  })
  for (let i = 0; i < 50; i++) {
    const [{ n }] = await db.sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and application_name = 'hirebase-api'`
    if (n > 0) break
    await new Promise((r) => setTimeout(r, 100))
  }
  child.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 300))
  release()
  await holding
  await holder.end()

  const res = await inFlight
  assert.equal(res.status, 200)
  assert.equal((await res.json()).inserted, 1)
assert.equal(await exited, 0, output)
  await assert.rejects(fetch(`http://127.0.0.1:${port}/health`))
})
