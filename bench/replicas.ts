// The read-replica bench (npm run bench -- --replicas): read throughput (GET a row by id, a report)
// through the API with 0 and with 1 replica, in the same run on the same data, and what reading
// your writes costs (a read sent with the write's X-Hirebase-LSN beside one without). It makes its
// own PostgreSQL 15 primary and standby on loopback (src/standby.ts); without the server programs
// it says so and does nothing. On one machine the standby shares the primary's cores: the ratio
// shows what routing costs and spreads, not what a second machine would add.
import { buildServer, limitsFromEnv } from '../src/server.ts'
import { pgBin, primaryWithStandby } from '../src/standby.ts'

const CLIENTS = 8
const EMPLOYEES = 20_000

interface Api {
  base: string
  close: () => Promise<void>
}

async function startApi(url: string, replicaUrls: string[], backupDir: string): Promise<Api> {
  const { app, sql } = await buildServer({
    databaseUrl: url,
    logLevel: 'silent',
    backupDir,
    limits: { ...limitsFromEnv({}), rateLimitMax: 1_000_000_000 },
    replicas: { urls: replicaUrls, maxLagSeconds: 5, waitMs: 50 },
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`,
    close: async () => {
      await app.close()
      await sql.end()
    },
  }
}

/** Requests per second of CLIENTS clients asking `path()` for `seconds`, and who answered. */
async function throughput(api: Api, path: () => string, seconds: number): Promise<{ rps: number; by: Record<string, number> }> {
  const end = performance.now() + seconds * 1000
  const by: Record<string, number> = {}
  let done = 0
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < end) {
        const res = await fetch(api.base + path())
        await res.arrayBuffer()
        if (res.status !== 200) throw new Error(`${path()}: ${res.status}`)
        const who = res.headers.get('x-hirebase-served-by') ?? '?'
        by[who] = (by[who] ?? 0) + 1
        done++
      }
    }),
  )
  return { rps: done / seconds, by }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

export async function benchReplicas(log: (s: string) => void, seconds = 5): Promise<string> {
  const bin = pgBin(15)
  if (!bin) return 'replica bench SKIPPED: PostgreSQL 15 server programs (/usr/lib/postgresql/15/bin, or PG_BIN) are missing'
  log('replicas: making a primary and a standby ...')
  const cluster = await primaryWithStandby(bin)
  const primaryUrl = cluster.urlOf(cluster.primary.port)
  const standbyUrl = cluster.urlOf(cluster.standby.port)
  const apis: Api[] = []
  try {
    const none = await startApi(primaryUrl, [], cluster.root)
    apis.push(none)
    const one = await startApi(primaryUrl, [standbyUrl], cluster.root)
    apis.push(one)
    const post = (path: string, body: unknown) =>
      fetch(none.base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    await post(
      '/tables/departments/rows',
      Array.from({ length: 12 }, (_, i) => ({ department_id: i + 1, department_name: `Department ${i + 1}` })),
    )
    await post(
      '/tables/jobs/rows',
      Array.from({ length: 100 }, (_, i) => ({ job_id: i + 1, job_name: `Job ${i + 1}` })),
    )
    for (let from = 1; from <= EMPLOYEES; from += 1000) {
      await post(
        '/tables/employees/rows',
        Array.from({ length: 1000 }, (_, i) => ({
          employee_id: from + i,
          employee_name: `Employee ${from + i}`,
          hiring_date: `2021-${String(1 + ((from + i) % 12)).padStart(2, '0')}-15T10:00:00Z`,
          department_id: 1 + ((from + i) % 12),
          job_id: 1 + ((from + i) % 100),
        })),
      )
    }
    log(`replicas: ${EMPLOYEES} employees loaded; ${CLIENTS} clients, ${seconds} s per measure`)
    const lines = ['measure                         0 replicas   1 replica   ratio   served by (1 replica)']
    const row = () => `/tables/employees/rows/${1 + Math.floor(Math.random() * EMPLOYEES)}`
    for (const [name, path] of [
      ['GET a row by id (req/s)', row],
      ['GET hires-by-quarter (req/s)', () => '/reports/hires-by-quarter?year=2021'],
    ] as const) {
      await throughput(one, path, 1) // warm: the replica's pool connects
      // Interleaved, A B B A, so that a change in the machine's load falls on both alike.
      const halves: Awaited<ReturnType<typeof throughput>>[] = []
      for (const api of [none, one, one, none]) halves.push(await throughput(api, path, seconds / 2))
      const a = { rps: (halves[0].rps + halves[3].rps) / 2 }
      const b = {
        rps: (halves[1].rps + halves[2].rps) / 2,
        by: Object.fromEntries(
          Object.keys({ ...halves[1].by, ...halves[2].by }).map((k) => [k, (halves[1].by[k] ?? 0) + (halves[2].by[k] ?? 0)]),
        ),
      }
      lines.push(
        `${name.padEnd(32)}${a.rps.toFixed(0).padStart(10)}${b.rps.toFixed(0).padStart(12)}${(b.rps / a.rps).toFixed(2).padStart(8)}   ${JSON.stringify(b.by)}`,
      )
    }
    // Read your writes: a write, then the same read with and without its LSN, one client.
    const plain: number[] = []
    const withLsn: number[] = []
    const writes: number[] = []
    let byReplica = 0
    for (let i = 0; i < 200; i++) {
      const id = 100_000 + i
      let started = performance.now()
      const res = await fetch(one.base + '/tables/jobs/rows', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([{ job_id: id, job_name: `Job ${id}` }]),
      })
      await res.arrayBuffer()
      writes.push(performance.now() - started)
      const lsn = res.headers.get('x-hirebase-lsn')!
      started = performance.now()
      const a = await fetch(`${one.base}/tables/jobs/rows/${id}`, { headers: { 'x-hirebase-lsn': lsn } })
      await a.arrayBuffer()
      withLsn.push(performance.now() - started)
      if (a.headers.get('x-hirebase-served-by') !== 'primary') byReplica++
      started = performance.now()
      await (await fetch(`${one.base}/tables/jobs/rows/1`)).arrayBuffer()
      plain.push(performance.now() - started)
    }
    lines.push(
      `read right after a write, median ms: with its LSN ${median(withLsn).toFixed(2)}, without ${median(plain).toFixed(2)} ` +
        `(+${(median(withLsn) - median(plain)).toFixed(2)} ms; ${byReplica}/200 with the LSN answered by the replica); the write itself ${median(writes).toFixed(2)} ms`,
    )
    return lines.join('\n')
  } finally {
    for (const api of apis) await api.close()
    await cluster.stop()
  }
}
