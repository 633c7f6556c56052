// Read replicas over real streaming replication: this file starts its own PostgreSQL 15 primary
// and a standby made by pg_basebackup -R, on loopback, because it pauses replay and stops servers
// (the test server other files share must not be disturbed). The API's primary is reached through
// a small TCP proxy, which is how "DATABASE_URL now points at the promoted replica" is played.
// Long, as one file: every scenario runs on the one primary/standby pair this file starts.
import assert from 'node:assert/strict'
import { createServer, connect as tcpConnect, type Socket } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { connect, type Sql } from '../../src/database.ts'
import { buildServer, limitsFromEnv } from '../../src/server.ts'
import { formatLsn, parseLsn, replicaSettingsFromEnv } from '../../src/replicas.ts'
import { pg, pgBin, primaryWithStandby, startCluster, stopCluster } from '../../src/standby.ts'

test('WAL positions are read strictly and written as PostgreSQL writes them; settings are checked at start', () => {
  assert.equal(parseLsn('0/16B3748'), 0x16b3748n)
  assert.equal(formatLsn(parseLsn('FFFFFFFF/ffffffff')!), 'FFFFFFFF/FFFFFFFF')
  for (const bad of ['', '16B3748', '0/', '/1', '0/123456789', '0x0/1', ' 0/1', '0/1/2', '-1/0']) assert.equal(parseLsn(bad), null, bad)
  assert.deepEqual(replicaSettingsFromEnv({}), { urls: [], maxLagSeconds: 5, waitMs: 50 })
  assert.deepEqual(
    replicaSettingsFromEnv({
      DATABASE_REPLICA_URLS: ' postgres://h1:5433/db, postgres://h2/db ',
      REPLICA_MAX_LAG: '0.5',
      REPLICA_WAIT_MS: '0',
    }),
    { urls: ['postgres://h1:5433/db', 'postgres://h2/db'], maxLagSeconds: 0.5, waitMs: 0 },
  )
  assert.throws(() => replicaSettingsFromEnv({ REPLICA_MAX_LAG: '-1' }), /REPLICA_MAX_LAG must be a number >= 0/)
  assert.throws(() => replicaSettingsFromEnv({ REPLICA_WAIT_MS: '1.5' }), /REPLICA_WAIT_MS must be a whole number >= 0/)
  assert.throws(
    () => replicaSettingsFromEnv({ DATABASE_REPLICA_URLS: 'postgres://h1/db,u:secret@h2' }),
    /^Error: DATABASE_REPLICA_URLS: URL 2 is not a postgres:\/\/ URL$/,
  )
})

// porsager/postgres#1193: a server address that accepts and closes at once (a proxy with nothing
// behind it) made the driver reconnect in a tight loop; src/database.ts's sockets wait between tries.
test('a pending query behind a proxy with no server reconnects slowly, not in a loop', async () => {
  const proxy = createServer((client) => {
    client.on('error', () => {})
    client.destroy()
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  let accepted = 0
  proxy.on('connection', () => accepted++)
  const sql = connect(`postgres://nobody:x@127.0.0.1:${(proxy.address() as { port: number }).port}/nothing`, { max: 1 })
  sql`select 1`.catch(() => {})
  await new Promise((resolve) => setTimeout(resolve, 2000))
  await sql.end({ timeout: 0 })
  await new Promise((resolve) => proxy.close(resolve))
  assert.ok(accepted < 20, `${accepted} connections in 2 s`)
})

const bin = pgBin(15)
if (!bin) {
  const why =
    'SKIPPED LOUDLY: PostgreSQL 15 server programs (/usr/lib/postgresql/15/bin: initdb, pg_ctl, pg_basebackup) are missing; CI has them'
  process.stderr.write(`\n${'!'.repeat(78)}\n${why}\n${'!'.repeat(78)}\n`)
  test.skip(why, () => {})
} else {
  await suite(bin)
}

async function suite(bin: string) {
  const cluster = await primaryWithStandby(bin)
  const { primary, standby, urlOf, password } = cluster
  let target = primary.port
  const sockets = new Set<Socket>()
  // The address DATABASE_URL names: whatever server `target` is.
  const proxy = createServer((client) => {
    const upstream = tcpConnect(target, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const proxyPort = (proxy.address() as { port: number }).port

  let app: Awaited<ReturnType<typeof buildServer>> | undefined
  let standbySql: Sql | undefined
  after(async () => {
    await app?.app.close()
    await app?.sql.end({ timeout: 1 })
    await standbySql?.end({ timeout: 1 })
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => proxy.close(resolve))
    await cluster.stop()
  })

  before(async () => {
    standbySql = connect(urlOf(standby.port), { max: 1 })
    app = await buildServer({
      databaseUrl: urlOf(proxyPort),
      logLevel: 'silent',
      allowedOrigins: ['http://app.example'],
      backupDir: join(cluster.root, 'backups'),
      limits: { ...limitsFromEnv({}), statementTimeoutMs: 3000 },
      replicas: { urls: [urlOf(standby.port)], maxLagSeconds: 2, waitMs: 50, probeMs: 200 },
    })
    await app.app.listen({ host: '127.0.0.1', port: 0 })
    await call('POST', '/tables/departments/rows', [{ department_id: 1, department_name: 'Engineering' }])
  })

  interface Answer {
    status: number
    body: any
    headers: Headers
    by: string | null
    ms: number
  }
  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const started = performance.now()
    const res = await fetch(`http://127.0.0.1:${(app!.app.server.address() as { port: number }).port}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    return {
      status: res.status,
      body: text ? JSON.parse(text) : null,
      headers: res.headers,
      by: res.headers.get('x-hirebase-served-by'),
      ms: performance.now() - started,
    }
  }
  const health = async () => (await call('GET', '/health')).body
  const replicaState = async () => (await health()).replication.replicas[0].state as string
  async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
    const end = Date.now() + ms
    while (!(await check())) {
      if (Date.now() > end)
        throw new Error(`${what}: not within ${ms} ms; /health: ${JSON.stringify(await health().catch((e) => String(e)))}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const job = (id: number) => [{ job_id: id, job_name: `Job ${id}` }]

  describe('read replicas', () => {
    test('reads are served by the replica, writes by the primary; /health shows the replica without credentials', async () => {
      const write = await call('POST', '/tables/jobs/rows', job(1))
      assert.equal(write.status, 200)
      assert.equal(write.by, 'primary')
      assert.match(write.headers.get('x-hirebase-lsn') ?? '', /^[0-9A-F]+\/[0-9A-F]+$/)
      const lsn = write.headers.get('x-hirebase-lsn')!
      // (the replica's first connection may take longer than REPLICA_WAIT_MS)
      await until(
        'the replica serves the new row',
        async () => (await call('GET', `/tables/jobs/rows/1?min_lsn=${lsn}`)).by === 'replica-1',
      )
      const row = await call('GET', `/tables/jobs/rows/1?min_lsn=${lsn}`)
      assert.deepEqual([row.status, row.by, row.body.job_name], [200, 'replica-1', 'Job 1'])
      for (const path of [
        '/tables/jobs/rows/1',
        '/tables/jobs/rows',
        '/ingest/batches',
        '/stats',
        '/data-dictionary',
        '/reports/hires-by-quarter',
        '/reports/departments-above-mean',
      ]) {
        const res = await call('GET', path)
        assert.deepEqual([path, res.status, res.by], [path, 200, 'replica-1'])
      }
      assert.equal((await call('GET', '/schedule')).by, 'primary')
      const h = await call('GET', '/health')
      assert.equal(h.status, 200)
      assert.deepEqual(
        [h.body.replication.replicas[0].name, h.body.replication.replicas[0].state, h.body.replication.replicas[0].in_rotation],
        ['replica-1', 'ok', true],
      )
      assert.equal(typeof h.body.replication.replicas[0].lag_seconds, 'number')
      assert.ok(!JSON.stringify(h.body).includes(password), 'no password in /health')
      assert.ok(!JSON.stringify(h.body).includes('hirebase_login'), 'no user name in /health')
      // Pages of an allowed origin may read both headers; the OpenAPI document names min_lsn.
      const cors = await call('GET', '/stats', undefined, { origin: 'http://app.example' })
      assert.match(cors.headers.get('access-control-expose-headers') ?? '', /x-hirebase-lsn.*x-hirebase-served-by/i)
      const spec = (await call('GET', '/openapi.json')).body
      for (const path of ['/stats', '/tables/{table}/rows/{id}', '/reports/hires-by-quarter']) {
        assert.ok(
          spec.paths[path].get.parameters.some((p: { name: string }) => p.name === 'min_lsn'),
          `${path} documents min_lsn`,
        )
      }
      assert.ok(!(spec.paths['/tables/{table}/rows'].post.parameters ?? []).some((p: { name: string }) => p.name === 'min_lsn'))
    })

    test('a malformed WAL position is a 400 bad_parameter naming it', async () => {
      for (const [path, headers, name] of [
        ['/tables/jobs/rows/1?min_lsn=0/XYZ', {}, 'min_lsn'],
        ['/stats?min_lsn=', {}, 'min_lsn'],
        ['/stats?min_lsn=123456789/0', {}, 'min_lsn'],
        ['/stats', { 'x-hirebase-lsn': '16B3748' }, 'x-hirebase-lsn'],
      ] as const) {
        const res = await call('GET', path, undefined, headers)
        assert.equal(res.status, 400, path)
        assert.equal(res.body.error.code, `bad_parameter:${name}`)
        assert.match(res.body.error.message, /WAL position/)
      }
      // Reports refuse unknown query parameters, but take min_lsn.
      assert.equal((await call('GET', '/reports/hires-by-quarter?min_lsn=0/0')).status, 200)
    })

    test('read your writes: with replay paused, a read with the LSN gets the new row from the primary; without it, the old state', async () => {
      await standbySql!`select pg_wal_replay_pause()`
      try {
        const write = await call('POST', '/tables/jobs/rows', job(2))
        const lsn = write.headers.get('x-hirebase-lsn')!
        const withLsn = await call('GET', '/tables/jobs/rows/2', undefined, { 'x-hirebase-lsn': lsn })
        assert.deepEqual([withLsn.status, withLsn.by, withLsn.body.job_name], [200, 'primary', 'Job 2'])
        assert.ok(withLsn.ms < 1000, `waited ${withLsn.ms} ms for a replica`)
        const viaQuery = await call('GET', `/tables/jobs/rows/2?min_lsn=${lsn}`)
        assert.deepEqual([viaQuery.status, viaQuery.by], [200, 'primary'])
        const without = await call('GET', '/tables/jobs/rows/2')
        // The replica, while still within REPLICA_MAX_LAG, has not replayed it: the old state.
        if (without.by === 'replica-1') assert.equal(without.status, 404)
        else assert.equal(without.status, 200)

        // Lag over the limit takes the replica out; resuming replay brings it back.
        await until('the paused replica is taken out', async () => (await replicaState()) === 'lagging')
        const h = await health()
        assert.ok(h.replication.replicas[0].lag_seconds >= 2, String(h.replication.replicas[0].lag_seconds))
        assert.equal(h.replication.replicas[0].replay_paused, true)
        assert.equal(h.status, 'degraded')
        const meanwhile = await call('GET', '/tables/jobs/rows/2')
        assert.deepEqual([meanwhile.status, meanwhile.by], [200, 'primary'])
      } finally {
        await standbySql!`select pg_wal_replay_resume()`
      }
      await until('the replica is back in the rotation', async () => (await replicaState()) === 'ok')
      const back = await call('GET', '/tables/jobs/rows/2')
      assert.deepEqual([back.status, back.by], [200, 'replica-1'])
    })

    test('replica down: reads fall back to the primary; back up, it rejoins', async () => {
      await standbySql!.end({ timeout: 1 })
      await stopCluster(standby, 'immediate')
      const read = await call('GET', '/tables/jobs/rows/1')
      assert.deepEqual([read.status, read.by], [200, 'primary'])
      await until('the replica is seen down', async () => (await replicaState()) === 'down')
      assert.equal((await call('GET', '/stats')).by, 'primary')
      await startCluster(standby)
      standbySql = connect(urlOf(standby.port), { max: 1 })
      await until('the replica rejoins', async () => (await replicaState()) === 'ok')
      assert.equal((await call('GET', '/tables/jobs/rows/1')).by, 'replica-1')
    })

    test('primary down: writes answer 503 promptly, reads go on from the replica; promoted and pointed at, the server recovers', async () => {
      const last = await call('POST', '/tables/jobs/rows', job(3))
      await until(
        'the replica has replayed the last write',
        async () => (await call('GET', `/tables/jobs/rows/3?min_lsn=${last.headers.get('x-hirebase-lsn')}`)).by === 'replica-1',
      )
      await stopCluster(primary, 'immediate')
      // Through a proxy a connect may hang (postgres.js retries a socket closed during start-up)
      // until the primary has failed two probes; from then on, writes are refused at once.
      await until('writes are refused', async () => (await call('POST', '/tables/jobs/rows', job(4))).status === 503)
      const write = await call('POST', '/tables/jobs/rows', job(4))
      assert.equal(write.status, 503)
      assert.equal(write.body.error.code, 'database_unavailable')
      assert.ok(Number(write.headers.get('retry-after')) >= 1)
      assert.ok(write.ms < 3000, `the 503 took ${write.ms} ms`)
      const read = await call('GET', '/tables/jobs/rows/3')
      assert.deepEqual([read.status, read.by, read.body.job_name], [200, 'replica-1', 'Job 3'])
      const h = await call('GET', '/health')
      assert.deepEqual([h.status, h.body.status], [200, 'degraded'])
      assert.notEqual(h.body.database, 'ok')

      // Failover: the standby is promoted and the primary's address now leads to it.
      await pg(bin, 'pg_ctl', ['-D', standby.dir, '-w', 'promote'])
      target = standby.port
      await until('writes succeed on the promoted server', async () => (await call('POST', '/tables/jobs/rows', job(4))).status === 200)
      await until('the promoted server leaves the rotation', async () => (await replicaState()) === 'promoted')
      const after = await call('GET', '/tables/jobs/rows/4')
      assert.deepEqual([after.status, after.by], [200, 'primary'])
    })
  })
}
