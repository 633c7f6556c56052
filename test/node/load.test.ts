// The historical CSV load: the samples, the CSV dialect's edge cases, failures that must
// leave the database as it was, and the zx entry point itself.
// Long, as one file: its cases share one database and the loader's helpers.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'
import { copyIn } from '../../src/copy.ts'
import { connect } from '../../src/database.ts'
import { loadDirectory, loadFile } from '../../src/load.ts'
import { projectRoot } from '../../src/paths.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { freshDatabase } from '../support.ts'

const db = await freshDatabase()
const { sql } = db

const summary = (results: Awaited<ReturnType<typeof loadDirectory>>) =>
  Object.fromEntries(results.map((r) => [r.table, [r.batch.inserted, r.batch.unchanged, r.batch.rejected]]))

async function csvFile(name: string, content: string | Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-csv-'))
  const file = join(dir, name)
  await writeFile(file, content)
  return file
}

const tableCounts = () => sql`select (select count(*) from jobs) j, (select count(*) from departments) d,
  (select count(*) from employees) e, (select count(*) from ingest_batches) b, (select count(*) from ingest_rejects) r`

describe('the sample data', () => {
  test('first load: 12 departments, 183 jobs, 1929 employees and 70 rejected for missing fields', async () => {
    const results = await loadDirectory(sql, SAMPLE_DIR)
    assert.deepEqual(summary(results), { departments: [12, 0, 0], jobs: [183, 0, 0], employees: [1929, 0, 70] })
    const employees = results.find((r) => r.table === 'employees')!
    assert.ok(
      employees.reasons.every((r) => r.reason.startsWith('missing:')),
      JSON.stringify(employees.reasons),
    )
    assert.equal(
      employees.reasons.reduce((n, r) => n + r.rows, 0),
      70,
    )
    const [{ sources }] = await sql`select array_agg(distinct source) as sources from ingest_batches`
    assert.deepEqual(sources, ['csv'])
  })

  test('second load changes nothing: all unchanged, the same rows rejected', async () => {
    const before = await sql`select md5(string_agg(e::text, ',' order by employee_id)) as h from employees e`
    const results = await loadDirectory(sql, SAMPLE_DIR)
    assert.deepEqual(summary(results), { departments: [0, 12, 0], jobs: [0, 183, 0], employees: [0, 1929, 70] })
    const after = await sql`select md5(string_agg(e::text, ',' order by employee_id)) as h from employees e`
    assert.deepEqual(after, before)
  })

  test('a reject records its line number and the fields exactly as read', async () => {
    // employees.csv line 2 is `2,Ty Hofer,2021-05-30T05:43:46Z,8,` (no job).
    const [reject] = await sql`select position::integer, payload, reasons from ingest_rejects
                                where table_name = 'employees' and position = 2 order by batch_id limit 1`
    assert.deepEqual(reject, { position: 2, payload: ['2', 'Ty Hofer', '2021-05-30T05:43:46Z', '8', ''], reasons: ['missing:job_id'] })
  })
})

describe('the CSV dialect', () => {
  test('quotes, embedded commas and quotes, a BOM, CRLF and no final newline', async () => {
    const file = await csvFile('jobs.csv', '\uFEFF5001,"Engineer, Data"\r\n5002,"The ""Best"" Job"\r\n5003,Plain')
    const result = await loadFile(sql, 'jobs', file)
    assert.deepEqual([result.batch.inserted, result.batch.rejected], [3, 0])
    const rows = await sql`select job_id, job_name from jobs where job_id between 5001 and 5003 order by job_id`
    assert.deepEqual(
      rows.map((r) => r.job_name),
      ['Engineer, Data', 'The "Best" Job', 'Plain'],
    )
  })

  test('LF endings, blank lines skipped, positions are line numbers', async () => {
    const file = await csvFile('jobs.csv', '5011,A\n\n5012\n5013,"multi\nline"\n5014,B,extra\n')
    const result = await loadFile(sql, 'jobs', file)
    assert.deepEqual([result.batch.received, result.batch.inserted, result.batch.rejected], [4, 1, 3])
    const rejects =
      await sql`select position::integer, reasons from ingest_rejects where batch_id = ${result.batch.batch_id} order by position`
    assert.deepEqual(
      rejects.map((r) => [r.position, r.reasons]),
      [
        [3, ['wrong_field_count']],
        [4, ['bad_text:job_name']],
        [6, ['wrong_field_count']],
      ],
    )
  })

  test('CRLF inside a quoted field does not shift later line numbers', async () => {
    const file = await csvFile('jobs.csv', '5021,"two\r\nlines"\r\n5022,\r\n')
    const result = await loadFile(sql, 'jobs', file)
    const rejects =
      await sql`select position::integer, reasons from ingest_rejects where batch_id = ${result.batch.batch_id} order by position`
    assert.deepEqual(
      rejects.map((r) => [r.position, r.reasons]),
      [
        [1, ['bad_text:job_name']],
        [3, ['missing:job_name']],
      ],
    )
  })

  test('UTF-8 names are kept; a NUL byte or bytes that are not UTF-8 cost their row (bad_encoding)', async () => {
    const latin1 = Buffer.from([0x35, 0x30, 0x33, 0x33, 0x2c, 0x43, 0x61, 0x66, 0xe9, 0x0a]) // 5033,Caf\xe9
    const file = await csvFile(
      'jobs.csv',
      Buffer.concat([Buffer.from('5031,Ingénieure données 数据\n5032,nul\0byte\n'), latin1, Buffer.from('5034,fine\n')]),
    )
    const result = await loadFile(sql, 'jobs', file)
    assert.deepEqual([result.batch.inserted, result.batch.rejected], [2, 2])
    const rows = await sql`select job_id, job_name from jobs where job_id between 5031 and 5034 order by job_id`
    assert.deepEqual(
      rows.map((r) => [r.job_id, r.job_name]),
      [
        [5031, 'Ingénieure données 数据'],
        [5034, 'fine'],
      ],
    )
    const rejects =
      await sql`select position::integer, payload, reasons from ingest_rejects where batch_id = ${result.batch.batch_id} order by position`
    assert.deepEqual(
      rejects.map((r) => [r.position, r.payload, r.reasons]),
      [
        [2, ['5032', 'nul\uFFFDbyte'], ['bad_encoding']],
        [3, ['5033', 'Caf\uFFFD'], ['bad_encoding']],
      ],
    )
  })

  test('fields reach the database exactly as read: backslashes, braces, quotes, tabs, NULL', async () => {
    // Records are staged as text[] inside COPY's text format: two layers of escaping to get right.
    const names = ['back\\slash \\N', '{braces, "and" quotes}', 'tab\there', 'NULL', '"', 'a\\"b']
    const csv = names.map((n, i) => `${5041 + i},"${n.replaceAll('"', '""')}"`).join('\n')
    const result = await loadFile(sql, 'jobs', await csvFile('jobs.csv', csv))
    assert.deepEqual([result.batch.inserted, result.batch.rejected], [5, 1]) // the tab is bad_text
    const rows = await sql`select job_name from jobs where job_id between 5041 and 5046 order by job_id`
    assert.deepEqual(
      rows.map((r) => r.job_name),
      names.filter((n) => !n.includes('\t')),
    )
    const [reject] = await sql`select payload from ingest_rejects where batch_id = ${result.batch.batch_id}`
    assert.deepEqual(reject.payload, ['5043', 'tab\there'])
  })

  test('malformed CSV fails the file with its line, and leaves everything as it was', async () => {
    const before = await tableCounts()
    const file = await csvFile('jobs.csv', '5041,fine\n5042,"unclosed\n')
    await assert.rejects(loadFile(sql, 'jobs', file), /jobs\.csv.*Quote Not Closed/)
    // A stray quote in an unquoted field is part of the value; a quoted field left open is not.
    const bad = await csvFile('jobs.csv', '5043,John "Johnny" Doe\n5044,"open\n5045,x')
    await assert.rejects(loadFile(sql, 'jobs', bad), /jobs\.csv, line 3: Quote Not Closed/)
    assert.deepEqual(await tableCounts(), before)
  })

  test('a directory without CSV files is an error that names what it expected', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-empty-'))
    await assert.rejects(loadDirectory(sql, dir), /no CSV files to load .* departments\.csv, jobs\.csv, employees\.csv/)
  })
})

describe('bulk loads', () => {
  test(
    'a large file loads exactly the valid rows, foreign keys in place, and readers of departments and jobs never wait',
    { timeout: 120_000 },
    async () => {
      const { generate } = await import('../../bench/generate.ts')
      const data = await generate(await mkdtemp(join(tmpdir(), 'hirebase-bulk-')), 60_000, 7)
      const fresh = await freshDatabase()
      // A reader that gives up on any lock wait over 300 ms, reading all through the load.
      const reader = connect(fresh.url, { max: 1, connection: { lock_timeout: '300' } as Record<string, string> })
      let loading = true
      let reads = 0
      const reading = (async () => {
        while (loading) {
          await reader`select (select count(*) from data.departments) + (select count(*) from data.jobs) as n`
          reads++
          await new Promise((r) => setTimeout(r, 20))
        }
      })()
      const results = await loadDirectory(fresh.sql, data.dir).finally(() => {
        loading = false
      })
      await reading.finally(() => reader.end())
      assert.ok(reads > 5, `${reads} reads`)
      const employees = results.find((r) => r.table === 'employees')!
      assert.deepEqual([employees.batch.inserted, employees.batch.rejected], [data.valid, data.rejected])
      const fks =
        await fresh.sql`select conname, convalidated from pg_constraint where conrelid = 'data.employees'::regclass and contype = 'f' order by conname`
      assert.deepEqual(
        fks.map((f) => [f.conname, f.convalidated]),
        [
          ['employees_department_id_fkey', true],
          ['employees_job_id_fkey', true],
        ],
      )
      const [{ orphans }] = await fresh.sql`select count(*)::int as orphans from data.employees e
      where not exists (select from data.departments d where d.department_id = e.department_id)
         or not exists (select from data.jobs j where j.job_id = e.job_id)`
      assert.equal(orphans, 0)

      // A bulk restore takes the same path: into an empty table, row for row, constraints back.
      const { backupTable } = await import('../../src/backup/write.ts')
      const { restoreTables } = await import('../../src/backup/restore.ts')
      const dir = await mkdtemp(join(tmpdir(), 'hirebase-bulk-backup-'))
      const print = async () => (await fresh.sql`select md5(string_agg(e::text, '|' order by e)) as h from data.employees e`)[0].h
      const before = await print()
      const backup = await backupTable(fresh.sql, 'employees', { dir })
      await fresh.sql`truncate data.employees`
      await restoreTables(fresh.sql, ['employees'], { dir, files: { employees: backup.path } })
      assert.equal(await print(), before)
      const after =
        await fresh.sql`select conname, convalidated from pg_constraint where conrelid = 'data.employees'::regclass and contype = 'f' order by conname`
      assert.deepEqual([...after], [...fks])
    },
  )
})

describe('COPY failures', () => {
  test('data the server rejects fails the transaction, releases the connection, and keeps nothing', async () => {
    const one = (await import('../../src/database.ts')).connect(db.url, { max: 1 })
    try {
      await assert.rejects(
        one.begin(async (tx) => {
          await tx`select api.open_ingest_input()`
          await copyIn(tx`copy pg_temp.ingest_input (position, fields) from stdin`, Readable.from(['1\t{}\n', 'not-a-number\t{}\n']))
        }),
        { code: '22P02' },
      )
      // The same single connection answers again, and is not left in an aborted transaction.
      const [{ state }] =
        await one`select count(*)::integer as state from pg_stat_activity where state like 'idle in transaction%' and datname = current_database()`
      assert.equal(state, 0)
    } finally {
      await one.end()
    }
  })
})

describe('scripts/load.mjs', () => {
  const run = promisify(execFile)
  const env = { ...process.env, DATABASE_URL: db.url }
  const zx = join(projectRoot, 'node_modules/.bin/zx')

  test('loads a directory and prints a summary per table', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-dir-'))
    await writeFile(join(dir, 'departments.csv'), '7001,Ops\n7002,\n')
    const { stdout } = await run(zx, ['scripts/load.mjs', dir], { cwd: projectRoot, env })
    assert.match(stdout, /departments: 2 rows read, 1 inserted, 0 unchanged, 1 rejected/)
    assert.match(stdout, /missing:department_name: 1/)
  })

  test('exits 1 with a clear message when the directory has none of the CSV files', async () => {
    // (a folder without any .csv file is refused before any work, exit 2: cli-args.test.ts)
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-none-'))
    await writeFile(join(dir, 'other.csv'), '1,x\n')
    const failed = await run(zx, ['scripts/load.mjs', dir], { cwd: projectRoot, env }).then(
      () => null,
      (e) => e,
    )
    assert.equal(failed?.code, 1)
    assert.match(failed.stderr, /error: no CSV files to load/)
  })

  test('exits 1 on the embedded default too (its exit hook must not turn a failure into 0)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-none-'))
    await writeFile(join(dir, 'other.csv'), '1,x\n')
    const { DATABASE_URL: _, ...embedded } = process.env
    const failed = await run(zx, ['scripts/load.mjs', dir], { cwd: projectRoot, env: embedded }).then(
      () => null,
      (e) => e,
    )
    assert.equal(failed?.code, 1)
    assert.match(failed.stderr, /error: no CSV files to load/)
  })
})
