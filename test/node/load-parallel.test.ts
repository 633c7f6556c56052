// The parallel load (load.mjs --jobs K): the same verdict as one connection for generated
// files with duplicates and invalid rows (fast-check, fixed seed), and all or nothing under
// kill -9 at every phase, the next load then completing and leaving no verdict tables behind.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import fc from 'fast-check'
import { generate } from '../../bench/generate.ts'
import { connect } from '../../src/database.ts'
import { loadFile, shareOf } from '../../src/load.ts'
import { projectRoot } from '../../src/paths.ts'
import { freshDatabase } from '../support.ts'
import { asCsv, batch, PARENTS } from '../generators.ts'

const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const db = await freshDatabase()
const sql = connect(db.url, { max: 1 })
after(() => sql.end())
const work = await mkdtemp(join(tmpdir(), 'hirebase-load-parallel-'))

/** Everything a load writes, without batch ids and times: the tables, the log, the counts. */
async function snapshot() {
  const [row] = await sql`select
    (select md5(coalesce(string_agg(e::text, '|' order by employee_id), '')) from data.employees e) as employees,
    (select md5(coalesce(string_agg(format('%s %s %s %s', table_name, position, payload, reasons), '|' order by batch_id, position), '')) from data.ingest_rejects) as rejects,
    (select coalesce(string_agg(format('%s %s %s %s %s %s', table_name, source, received, inserted, unchanged, rejected), '; ' order by batch_id), '') from data.ingest_batches) as batches,
    (select md5(coalesce(string_agg(h::text, '|' order by h), '')) from data.hire_counts h) as counts,
    (select md5(coalesce(string_agg(h::text, '|' order by h), '')) from data.hires_by_department h) as by_department`
  return { ...row }
}

const leftovers = async () => (await sql`select count(*)::int as n from pg_class where relname ~ '^load_[0-9]+_[0-9]+$'`)[0].n as number

async function reset() {
  await sql`truncate data.employees`
  await sql`truncate data.ingest_batches, data.ingest_rejects cascade`
}

test('shareOf sends every spelling of one id value to the same worker', () => {
  for (const k of [1, 2, 3, 4]) {
    for (const n of [1, 7, 42, 2147483647]) {
      const shares = [`${n}`, ` ${n}`, `00${n}`, `\u3000${n}\t`, `0${n} `].map((f) => shareOf(f, k))
      assert.ok(
        shares.every((s) => s === n % k),
        `${n} over ${k}: ${shares}`,
      )
    }
  }
})

describe('K = 1 and K = 3 give the same tables, rejects and counts', () => {
  test('for generated files with duplicates and invalid rows', async () => {
    process.env.LOAD_PARALLEL_MIN_BYTES = '1'
    for (const table of ['departments', 'jobs']) {
      const rows = Array.from({ length: PARENTS }, (_, i) => `${i + 1},${table} ${i + 1}`).join('\n')
      await writeFile(join(work, `${table}.csv`), rows)
      await loadFile(sql, table, join(work, `${table}.csv`))
    }
    let run = 0
    // Some rows in the table before (unchanged, or the same id with other content), then the file.
    const file = fc.tuple(batch('employees', 0, 12, 20), batch('employees', 0, 80, 20))
    await fc.assert(
      fc.asyncProperty(file, async ([existing, rows]) => {
        const dir = join(work, `run-${run++}`)
        await mkdir(dir)
        const csv = (records: unknown[]) =>
          records
            .map((r) => asCsv('employees', r as never))
            .filter((r): r is string[] => r !== undefined)
            .map((fields) => fields.map((f) => `"${f.replaceAll('"', '""')}"`).join(','))
            .join('\n')
        await writeFile(join(dir, 'existing.csv'), csv(existing))
        await writeFile(join(dir, 'employees.csv'), csv(rows))
        const results = []
        for (const jobs of [1, 3]) {
          await reset()
          await loadFile(sql, 'employees', join(dir, 'existing.csv'))
          const r = await loadFile(sql, 'employees', join(dir, 'employees.csv'), { jobs, url: db.url })
          const { received, inserted, unchanged, rejected } = r.batch
          results.push({ counts: { received, inserted, unchanged, rejected }, reasons: r.reasons, state: await snapshot() })
        }
        assert.deepEqual(results[1], results[0])
        assert.equal(await leftovers(), 0)
      }),
      { seed, numRuns: 12, includeErrorInReport: true },
    )
    delete process.env.LOAD_PARALLEL_MIN_BYTES
  })
})

describe('all or nothing under kill -9', () => {
  const zx = join(projectRoot, 'node_modules/.bin/zx')
  const env = { ...process.env, DATABASE_URL: db.url, CI: '1', LOAD_PARALLEL_MIN_BYTES: '1000000' }
  let data: string

  const load = (dir = join(data, 'employees-only')) =>
    spawn(zx, ['scripts/load.mjs', dir, '--jobs', '3'], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const exitOf = (child: ReturnType<typeof load>) => new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const sessions = async () =>
    (await sql`select coalesce(array_agg(pid), '{}') as pids from pg_stat_activity where datname = current_database()`)[0].pids as number[]
  let known: number[] = []
  /** No session of the database is left but those there before the load. */
  const quiet = async () => {
    let left: readonly unknown[] = []
    for (let i = 0; i < 1800; i++) {
      left = await sql`select pid, state, wait_event_type, wait_event, left(query, 80) as query from pg_stat_activity
        where datname = current_database() and pid <> all(${known}) and backend_type = 'client backend'`
      if (left.length === 0) return
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`the killed load's sessions never ended: ${JSON.stringify(left)}`)
  }
  const active = async (pattern: string) =>
    (
      await sql`
    select count(*)::int as n from pg_stat_activity where datname = current_database() and state = 'active' and query like ${pattern}`
    )[0].n as number
  const batches = async () => (await sql`select count(*)::int as n from data.ingest_batches where table_name = 'employees'`)[0].n as number

  // Each phase as the database shows it.
  const phases: [string, () => Promise<boolean>][] = [
    ['reading and staging', async () => (await active('copy pg_temp.ingest_input%')) >= 2],
    ['worker validation', async () => (await active('%runner.stage_share%')) >= 1],
    ['the final transaction', async () => (await active('%runner.finish_load%')) >= 1],
    ['right after it', async () => (await batches()) > 0],
  ]

  let before: Awaited<ReturnType<typeof snapshot>>
  let complete: Awaited<ReturnType<typeof snapshot>>

  test('a complete load, for reference', async () => {
    const generated = await generate(join(work, 'big'), 120_000)
    data = generated.dir
    await reset()
    await sql`truncate data.departments, data.jobs cascade`
    const first = load(data)
    assert.equal(await exitOf(first), 0)
    await mkdir(join(data, 'employees-only'))
    await copyFile(join(data, 'employees.csv'), join(data, 'employees-only/employees.csv'))
    // departments and jobs in, employees not: the state every kill starts from.
    await sql`truncate data.employees`
    await sql`delete from data.ingest_rejects where table_name = 'employees'`
    await sql`delete from data.ingest_batches where table_name = 'employees'`
    before = await snapshot()
    const full = load()
    let out = ''
    full.stdout.on('data', (d) => {
      out += d
    })
    assert.equal(await exitOf(full), 0)
    assert.match(out, new RegExp(`employees: 120000 rows read, ${generated.valid} inserted, 0 unchanged, ${generated.rejected} rejected`))
    complete = await snapshot()
    assert.notDeepEqual(complete, before)
  })

  for (const [phase, reached] of phases) {
    test(`killed during ${phase}: the tables and the log as before or as after, never partial; the next load completes`, async () => {
      await sql`truncate data.employees`
      await sql`delete from data.ingest_rejects where table_name = 'employees'`
      await sql`delete from data.ingest_batches where table_name = 'employees'`
      assert.deepEqual(await snapshot(), before)
      known = await sessions()
      const child = load()
      const exited = exitOf(child)
      let caught = false
      for (let i = 0; i < 6000 && child.exitCode === null; i++) {
        if (await reached()) {
          caught = true
          break
        }
        await new Promise((r) => setTimeout(r, 10))
      }
      assert.ok(caught, `the load never showed ${phase} (exit ${child.exitCode})`)
      child.kill('SIGKILL')
      assert.equal(await exited, null)
      await quiet()
      const state = await snapshot()
      if (phase === 'right after it') assert.deepEqual(state, complete)
      else if (phase === 'the final transaction')
        assert.ok([JSON.stringify(before), JSON.stringify(complete)].includes(JSON.stringify(state)), 'partial')
      else assert.deepEqual(state, before)
      const killedCommitted = JSON.stringify(state) === JSON.stringify(complete)
      // The next load completes, and removes what the killed one left.
      const next = load()
      assert.equal(await exitOf(next), 0)
      assert.equal(await leftovers(), 0)
      const after = await snapshot()
      assert.equal(after.employees, complete.employees)
      assert.equal(after.counts, complete.counts)
      if (!killedCommitted) assert.deepEqual(after, complete)
    })
  }
})
