// The benchmark suite: every toolkit operation side by side with its baseline, in the same
// run, on fresh databases. Absolute rows/s on a shared machine are noise; the ratios are
// the result. Correctness is checked along the way (counts, report equality).
// Long, as one file: each measurement is a few lines beside its baseline, and they share the setup.
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { parse } from 'csv-parse/sync'
import { copyIn } from '../src/copy.ts'
import { cloneDatabase, connect, withDatabase } from '../src/database.ts'
import { loadFile } from '../src/load.ts'
import { migrate } from '../src/migrate.ts'
import { projectRoot } from '../src/paths.ts'
import { generate, type Generated } from './generate.ts'

const run = promisify(execFile)

export interface Row {
  group: string
  measure: string
  rows: number
  seconds: number
  baseline?: string
  rss_mb?: number
  p50_ms?: number
  p99_ms?: number
  note?: string
}

export interface BenchResult {
  rows: number
  generated: Generated
  results: Row[]
  checks: Record<string, boolean | number>
  table: string
}

const rate = (r: Row) => r.rows / Math.max(r.seconds, 1e-9)
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}
const time = async <T>(work: () => Promise<T>) => {
  const started = performance.now()
  const value = await work()
  return { value, seconds: (performance.now() - started) / 1000 }
}

async function child(url: string, ...args: string[]): Promise<{ seconds: number; rss_mb: number; result: any }> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(projectRoot, 'bench/child.ts'), ...args], {
    // Any file on K workers, so that the small smoke run takes the parallel path too.
    cwd: projectRoot,
    env: { ...process.env, DATABASE_URL: url, LOAD_PARALLEL_MIN_BYTES: '1' },
    maxBuffer: 64 * 1024 * 1024,
  })
  return JSON.parse(stdout.trim().split('\n').at(-1)!)
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })

/**
 * The soak: `clients` clients POST 100-row batches of new employees (each with an
 * Idempotency-Key, retried with the same key until acknowledged) for `seconds` seconds to
 * scripts/serve.mjs, on a private embedded PostgreSQL that is restarted twice meanwhile.
 * Latencies are of every answer; the error rate is the share of answers that were not 200;
 * the accounting check: the table holds exactly the acknowledged rows.
 */
export async function soak(options: {
  clients: number
  seconds: number
  log?: (s: string) => void
}): Promise<{ row: Row; checks: Record<string, boolean | number> }> {
  const log = options.log ?? (() => {})
  const { importEmbeddedPostgres } = await import('../src/database.ts')
  const { chmod } = await import('node:fs/promises')
  const { userInfo } = await import('node:os')
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-soak-'))
  await chmod(dir, 0o755) // as root the server runs as `postgres`, which must reach its data
  const pgPort = await freePort()
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port: pgPort,
    user: 'postgres',
    password: 'soak',
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: () => {},
    onError: () => {},
  })
  log(`soak: ${options.clients} clients for ${options.seconds} s, the database restarted twice ...`)
  await pg.initialise()
  await pg.start()
  const url = `postgres://postgres:soak@127.0.0.1:${pgPort}/postgres`
  await migrate(url)
  const check = connect(url, { max: 1 })
  await check`call ingest_batch('departments', '[{"department_id": 1, "department_name": "Soak"}]')`
  await check`call ingest_batch('jobs', '[{"job_id": 1, "job_name": "Soak"}]')`
  await check.end()
  const port = await freePort()
  const server = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/serve.mjs'], {
    // RATE_LIMIT_MAX: the soak's clients are one address sending far more than a client should.
    cwd: projectRoot,
    env: {
      ...process.env,
      DATABASE_URL: url,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'fatal',
      BACKUP_DIR: join(dir, 'backups'),
      RATE_LIMIT_MAX: '1000000',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const latencies: number[] = []
  let answers = 0
  let errors = 0
  const acknowledged = new Map<string, number>()
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout.on('data', (d) => {
        if (String(d).includes('API on')) resolve()
      })
      server.on('exit', (code) => reject(new Error(`serve.mjs exited ${code}`)))
    })
    const started = performance.now()
    const ends = started + options.seconds * 1000
    let nextId = 1
    const restarts = (async () => {
      for (const at of [1 / 3, 2 / 3]) {
        await new Promise((r) => setTimeout(r, Math.max(0, started + at * options.seconds * 1000 - performance.now())))
        await pg.stop()
        await new Promise((r) => setTimeout(r, 500))
        await pg.start()
      }
    })()
    await Promise.all(
      Array.from({ length: options.clients }, async (_, client) => {
        while (performance.now() < ends) {
          const first = nextId
          nextId += 100
          const key = `soak-${client}-${first}`
          const body = JSON.stringify(
            Array.from({ length: 100 }, (_, i) => ({
              employee_id: first + i,
              employee_name: `Soak ${first + i}`,
              hiring_date: '2021-01-01T00:00:00Z',
              department_id: 1,
              job_id: 1,
            })),
          )
          // Retried with the same key until acknowledged: a lost answer is replayed, never doubled.
          for (let attempt = 0; ; attempt++) {
            const t0 = performance.now()
            const res = await fetch(`http://127.0.0.1:${port}/tables/employees/rows`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'idempotency-key': key },
              body,
            }).catch(() => undefined)
            const answer = res ? await res.json().catch(() => undefined) : undefined
            latencies.push(performance.now() - t0)
            answers++
            if (res?.status === 200) {
              acknowledged.set(key, answer.inserted)
              break
            }
            errors++
            if (attempt > 200) throw new Error(`soak: batch ${key} never acknowledged: ${res?.status} ${JSON.stringify(answer)}`)
            await new Promise((r) => setTimeout(r, 100))
          }
        }
      }),
    )
    await restarts
    const seconds = (performance.now() - started) / 1000
    const after = connect(url, { max: 1 })
    const [{ rows, distinct }] = await after`select count(*)::int as rows, count(distinct employee_id)::int as distinct from data.employees`
    await after.end()
    const acked = [...acknowledged.values()].reduce((a, b) => a + b, 0)
    const checks = {
      soak_accounting: rows === acked && distinct === rows && acked === acknowledged.size * 100,
      soak_error_rate: Math.round((errors / answers) * 10000) / 10000,
    }
    return {
      checks,
      row: {
        group: 'soak',
        measure: `${options.clients} clients POST 100-row batches for ${options.seconds} s, database restarted twice`,
        rows: acked,
        seconds,
        p50_ms: percentile(latencies, 50),
        p99_ms: percentile(latencies, 99),
        note: `${answers} answers, ${((100 * errors) / answers).toFixed(1)}% not 200 (retried with the same key); ${rows} rows in the table, ${acked} acknowledged`,
      },
    }
  } finally {
    // Graceful stop, bounded: a server that does not exit within 15 s is killed (and said so).
    const exited = new Promise((r) => (server.exitCode !== null || server.signalCode !== null ? r(null) : server.on('exit', r)))
    server.kill('SIGTERM')
    const late = setTimeout(() => {
      log('soak: serve.mjs did not exit within 15 s of SIGTERM: killed')
      server.kill('SIGKILL')
    }, 15_000)
    await exited
    clearTimeout(late)
    await pg.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Runs the suite against the server at `serverUrl` (its user needs CREATEDB). */
export async function bench(
  serverUrl: string,
  options: { rows: number; apiRows?: number; soak?: { clients: number; seconds: number }; log?: (s: string) => void },
): Promise<BenchResult> {
  const log = options.log ?? (() => {})
  const work = await mkdtemp(join(tmpdir(), 'hirebase-bench-'))
  const suffix = randomBytes(4).toString('hex')
  const template = `hirebase_bench_tpl_${suffix}`
  const databases: string[] = []
  const admin = connect(serverUrl, { max: 1 })
  const results: Row[] = []
  const checks: Record<string, boolean | number> = {}
  const fresh = async (what: string) => {
    const name = `hirebase_bench_${what}_${suffix}`
    databases.push(name)
    return cloneDatabase(serverUrl, template, name)
  }
  try {
    log(`generating ${options.rows} employees ...`)
    const data = await generate(join(work, 'data'), options.rows)
    await admin.unsafe(`create database ${template}`)
    databases.push(template)
    await migrate(withDatabase(serverUrl, template))

    // ---- 1. load: on one connection, then on K = 2 and 4 workers (load.mjs --jobs) ----
    const tableHash = async (url: string) => {
      const s = connect(url, { max: 1 })
      try {
        return (
          await s`select (select md5(string_agg(e::text, '|' order by employee_id)) from data.employees e)
          || (select md5(string_agg(h::text, '|' order by h)) from data.hire_counts h)
          || (select md5(string_agg(format('%s %s %s %s', table_name, position, payload, reasons), '|' order by table_name, position)) from data.ingest_rejects) as h`
        )[0].h as string
      } finally {
        await s.end()
      }
    }
    let loadUrl = ''
    let reference = ''
    for (const jobs of [1, 2, 4]) {
      log(`load: toolkit, ${jobs} worker${jobs > 1 ? 's' : ''} ...`)
      const url = await fresh(`load${jobs}`)
      const load = await child(url, 'load', data.dir, String(jobs))
      const employees = load.result.find((r: { table: string }) => r.table === 'employees')
      checks[`load_${jobs}_inserted_as_generated`] = employees.inserted === data.valid
      checks[`load_${jobs}_rejected_as_generated`] = employees.rejected === data.rejected
      const hash = await tableHash(url)
      if (jobs === 1) [loadUrl, reference] = [url, hash]
      else checks[`load_${jobs}_same_tables_as_1`] = hash === reference
      results.push({
        group: 'load',
        measure: jobs === 1 ? 'scripts/load.mjs (all rules, rejects logged)' : `scripts/load.mjs --jobs ${jobs}`,
        rows: data.rows,
        seconds: load.seconds,
        rss_mb: load.rss_mb,
        baseline: 'COPY valid rows into the constrained tables',
      })
    }

    log('load: COPY baselines ...')
    const copyUrl = await fresh('copy')
    const copySql = connect(copyUrl, { max: 1 })
    try {
      const copied = await time(async () => {
        for (const [table, file] of [
          ['departments', 'departments.csv'],
          ['jobs', 'jobs.csv'],
          ['employees', 'employees.valid.csv'],
        ]) {
          await copyIn(copySql`copy ${copySql(`data.${table}`)} from stdin (format csv)`, createReadStream(join(data.dir, file)))
        }
      })
      results.push({ group: 'load', measure: 'COPY valid rows into the constrained tables', rows: data.rows, seconds: copied.seconds })
      await copySql`create unlogged table staging (line text)`
      const staged = await time(() =>
        copyIn(copySql`copy staging from stdin (format text, delimiter e'\\x01')`, createReadStream(join(data.dir, 'employees.csv'))),
      )
      results.push({
        group: 'load',
        measure: 'COPY raw lines into an unconstrained staging table (physical limit)',
        rows: data.rows,
        seconds: staged.seconds,
      })
    } finally {
      await copySql.end()
    }

    // ---- 2. API ----
    const apiRows = Math.min(options.apiRows ?? 500_000, data.valid)
    const records = parse(await readFile(join(data.dir, 'employees.valid.csv'), 'utf8'), { to: apiRows }) as string[][]
    const batches: string[] = []
    for (let i = 0; i < records.length; i += 1000) {
      batches.push(
        JSON.stringify(
          records.slice(i, i + 1000).map(([employee_id, employee_name, hiring_date, department_id, job_id]) => ({
            employee_id: Number(employee_id),
            employee_name,
            hiring_date,
            department_id: Number(department_id),
            job_id: Number(job_id),
          })),
        ),
      )
    }
    const apiUrl = await fresh('api')
    const apiSql = connect(apiUrl, { max: 8 })
    const port = await freePort()
    const server = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/serve.mjs'], {
      cwd: projectRoot,
      env: {
        ...process.env,
        DATABASE_URL: apiUrl,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        BACKUP_DIR: join(work, 'api-backups'),
        RATE_LIMIT_MAX: '1000000',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout.on('data', (d) => {
          if (String(d).includes('API on')) resolve()
        })
        server.on('exit', (code) => reject(new Error(`serve.mjs exited ${code}`)))
      })
      for (const table of ['departments', 'jobs']) await loadFile(apiSql, table, join(data.dir, `${table}.csv`))
      const reset = () => apiSql`truncate data.employees`
      const clients = async (n: number, send: (batch: string) => Promise<void>) => {
        await reset()
        const latencies: number[] = []
        let next = 0
        const { seconds } = await time(() =>
          Promise.all(
            Array.from({ length: n }, async () => {
              while (next < batches.length) {
                const batch = batches[next++]
                const t0 = performance.now()
                await send(batch)
                latencies.push(performance.now() - t0)
              }
            }),
          ),
        )
        const [{ count }] = await apiSql`select count(*)::int as count from data.employees`
        return { seconds, latencies, count }
      }
      const http = (batch: string) =>
        fetch(`http://127.0.0.1:${port}/tables/employees/rows`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: batch,
        }).then(async (r) => {
          if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`)
          await r.arrayBuffer()
        })
      for (const n of [1, 4, 8]) {
        log(`api: HTTP, ${n} clients ...`)
        const r = await clients(n, http)
        checks[`api_${n}_clients_all_rows_in`] = r.count === records.length
        results.push({
          group: 'api',
          measure: `HTTP POST 1000-row batches, ${n} client${n > 1 ? 's' : ''}`,
          rows: records.length,
          seconds: r.seconds,
          p50_ms: percentile(r.latencies, 50),
          p99_ms: percentile(r.latencies, 99),
          baseline: 'CALL ingest_batch in SQL, 4 connections',
        })
      }
      log('api: direct SQL baselines ...')
      const direct = await clients(4, async (batch) => {
        await apiSql`call ingest_batch('employees', ${batch}::text::jsonb)`
      })
      checks.api_direct_all_rows_in = direct.count === records.length
      results.push({
        group: 'api',
        measure: 'CALL ingest_batch in SQL, 4 connections',
        rows: records.length,
        seconds: direct.seconds,
        p50_ms: percentile(direct.latencies, 50),
        p99_ms: percentile(direct.latencies, 99),
        baseline: 'plain INSERT ... SELECT FROM jsonb_to_recordset, 4 connections',
      })
      const plain = await clients(4, async (batch) => {
        await apiSql`insert into data.employees select * from jsonb_to_recordset(${batch}::text::jsonb)
          as r(employee_id integer, employee_name text, hiring_date timestamptz, department_id integer, job_id integer)`
      })
      results.push({
        group: 'api',
        measure: 'plain INSERT ... SELECT FROM jsonb_to_recordset, 4 connections',
        rows: records.length,
        seconds: plain.seconds,
        p50_ms: percentile(plain.latencies, 50),
        p99_ms: percentile(plain.latencies, 99),
      })

      // ---- 4. reports (on the API database, loaded through the toolkit) ----
      log('reports ...')
      await reset()
      await loadFile(apiSql, 'employees', join(data.dir, 'employees.valid.csv'))
      const naive = {
        quarters: `select d.department_name as department, j.job_name as job,
            count(*) filter (where extract(quarter from e.hiring_date at time zone 'UTC') = 1)::int as q1,
            count(*) filter (where extract(quarter from e.hiring_date at time zone 'UTC') = 2)::int as q2,
            count(*) filter (where extract(quarter from e.hiring_date at time zone 'UTC') = 3)::int as q3,
            count(*) filter (where extract(quarter from e.hiring_date at time zone 'UTC') = 4)::int as q4
          from data.employees e join data.departments d using (department_id) join data.jobs j using (job_id)
          where extract(year from e.hiring_date at time zone 'UTC') = 2021
          group by d.department_id, j.job_id order by d.department_name, j.job_name, d.department_id, j.job_id`,
        above: `with per as (select d.department_id as id, d.department_name as department, count(e.employee_id)::int as hired
            from data.departments d left join data.employees e on e.department_id = d.department_id
             and extract(year from e.hiring_date at time zone 'UTC') = 2021 group by d.department_id)
          select * from per where hired > (select sum(hired)::numeric / count(*) from per) order by hired desc, department, id`,
      }
      for (const [name, route, query] of [
        ['hires by quarter', '/reports/hires-by-quarter?year=2021', naive.quarters],
        ['departments above the mean', '/reports/departments-above-mean?year=2021', naive.above],
      ] as const) {
        const reference = [...(await apiSql.unsafe(query))]
        const viaApi = await (await fetch(`http://127.0.0.1:${port}${route}`)).json()
        checks[`report_${name.replaceAll(' ', '_')}_equals_naive`] = JSON.stringify(viaApi) === JSON.stringify(reference)
        const apiTimes: number[] = []
        const naiveTimes: number[] = []
        for (let i = 0; i < 10; i++) {
          const t0 = performance.now()
          await (await fetch(`http://127.0.0.1:${port}${route}`)).arrayBuffer()
          apiTimes.push(performance.now() - t0)
        }
        for (let i = 0; i < 3; i++) {
          const t0 = performance.now()
          await apiSql.unsafe(query)
          naiveTimes.push(performance.now() - t0)
        }
        results.push({
          group: 'reports',
          measure: `GET ${route.split('?')[0]}`,
          rows: reference.length,
          seconds: percentile(apiTimes, 50) / 1000,
          p50_ms: percentile(apiTimes, 50),
          p99_ms: percentile(apiTimes, 99),
          baseline: `naive GROUP BY: ${name}`,
          note: `${data.valid} employees`,
        })
        results.push({
          group: 'reports',
          measure: `naive GROUP BY: ${name}`,
          rows: reference.length,
          seconds: percentile(naiveTimes, 50) / 1000,
          p50_ms: percentile(naiveTimes, 50),
          p99_ms: percentile(naiveTimes, 99),
        })
      }
    } finally {
      server.kill('SIGTERM')
      await new Promise((r) => server.on('exit', r))
      await apiSql.end()
    }

    // ---- 3. backup and restore (on the database the toolkit loaded) ----
    log('backup ...')
    const backupDir = join(work, 'backups')
    const backup = await child(loadUrl, 'backup', 'employees', backupDir)
    const backupRows = backup.result.rows as number
    results.push({
      group: 'backup',
      measure: 'scripts/backup.mjs employees (Avro, deflate)',
      rows: backupRows,
      seconds: backup.seconds,
      rss_mb: backup.rss_mb,
      baseline: 'pg_dump -Fc -t employees',
      note: `${((await stat(backup.result.path)).size / 1e6).toFixed(1)} MB`,
    })
    const loadSql = connect(loadUrl, { max: 1 })
    try {
      const binary = await time(async () => {
        let bytes = 0
        await pipeline(
          await loadSql`copy data.employees to stdout (format binary)`.readable(),
          new Writable({
            write(c, _e, done) {
              bytes += c.length
              done()
            },
          }),
        )
        return bytes
      })
      results.push({
        group: 'backup',
        measure: 'COPY employees TO STDOUT (FORMAT binary)',
        rows: backupRows,
        seconds: binary.seconds,
        note: `${(binary.value / 1e6).toFixed(1)} MB, not kept`,
      })
      const dump = join(work, 'employees.dump')
      const pgDump = await time(() => run('pg_dump', ['-Fc', '-t', 'data.employees', '-f', dump, loadUrl])).catch((err: Error) => ({
        error: err.message.split('\n').find((l) => l.includes('pg_dump:')) ?? err.message,
      }))
      if ('error' in pgDump) {
        results.push({
          group: 'backup',
          measure: 'pg_dump -Fc -t employees',
          rows: backupRows,
          seconds: NaN,
          note: `not run: ${pgDump.error}`,
        })
      } else {
        results.push({
          group: 'backup',
          measure: 'pg_dump -Fc -t employees',
          rows: backupRows,
          seconds: pgDump.seconds,
          note: `${((await stat(dump)).size / 1e6).toFixed(1)} MB`,
        })
      }

      log('restore ...')
      const before = (await loadSql`select md5(string_agg(e::text, '|' order by e)) as h from data.employees e`)[0].h
      await loadSql`truncate data.employees`
      const restore = await child(loadUrl, 'restore', 'employees', backupDir, backup.result.path)
      checks.restore_identical = (await loadSql`select md5(string_agg(e::text, '|' order by e)) as h from data.employees e`)[0].h === before
      results.push({
        group: 'restore',
        measure: 'scripts/restore.mjs employees (into an empty table)',
        rows: backupRows,
        seconds: restore.seconds,
        rss_mb: restore.rss_mb,
        baseline: 'pg_restore --data-only',
      })
      if (!('error' in pgDump)) {
        await loadSql`truncate data.employees`
        const pgRestore = await time(() => run('pg_restore', ['--data-only', '-d', loadUrl, dump]))
        results.push({ group: 'restore', measure: 'pg_restore --data-only', rows: backupRows, seconds: pgRestore.seconds })
      } else {
        results.push({ group: 'restore', measure: 'pg_restore --data-only', rows: backupRows, seconds: NaN, note: 'not run: no dump' })
      }
    } finally {
      await loadSql.end()
    }
    if (options.soak) {
      const soaked = await soak({ ...options.soak, log })
      results.push(soaked.row)
      Object.assign(checks, soaked.checks)
    }
    return { rows: options.rows, generated: data, results, checks, table: markdown(results) }
  } finally {
    for (const name of databases.reverse()) {
      await admin.unsafe(`drop database if exists ${name} with (force)`).catch(() => {})
      // The API roles named after it (sql/procedures/010-roles.sql), made when it was migrated.
      await admin.unsafe(`drop role if exists hirebase_login_${name}, hirebase_api_${name}`).catch(() => {})
    }
    await admin.end()
    await rm(work, { recursive: true, force: true })
  }
}

/** One markdown table: rows/s, ratio to the baseline named on the row, peak RSS, latencies. */
export function markdown(results: Row[]): string {
  const byName = new Map(results.map((r) => [r.measure, r]))
  const fmt = (n: number | undefined, digits = 0) =>
    n === undefined || Number.isNaN(n) ? '' : n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits })
  const lines = [
    '| group | measurement | rows | rows/s | ratio to baseline | peak RSS (MB) | p50 ms | p99 ms | note |',
    '|---|---|---:|---:|---|---:|---:|---:|---|',
  ]
  for (const r of results) {
    const base = r.baseline ? byName.get(r.baseline) : undefined
    const ratio =
      base && !Number.isNaN(base.seconds) && !Number.isNaN(r.seconds)
        ? r.group === 'reports'
          ? `${fmt(base.seconds / r.seconds, 1)}x faster than ${r.baseline}`
          : `${fmt(rate(r) / rate(base), 2)}x ${r.baseline}`
        : r.baseline
          ? `(${r.baseline}: not measured)`
          : 'baseline'
    lines.push(
      `| ${r.group} | ${r.measure} | ${fmt(r.rows)} | ${Number.isNaN(r.seconds) ? '' : fmt(rate(r))} | ${ratio} | ${fmt(r.rss_mb)} | ${fmt(r.p50_ms, 1)} | ${fmt(r.p99_ms, 1)} | ${r.note ?? ''} |`,
    )
  }
  return lines.join('\n')
}
