// Properties over generated data (fast-check), checked against a real database and the
// test oracle in ../oracle.ts:
//   differential  the database's reasons for every generated row equal the oracle's;
//   round trip    valid values come back exactly (trimmed) on every path in and out;
//   isolation     any row beside a valid one costs itself only, never the request.
// `npm test` runs them with a fixed seed; `npm run fuzz` longer, with a new seed it prints
// (`npm run fuzz -- --seed N` replays one).
import assert from 'node:assert/strict'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { backupTable } from '../../src/backup/write.ts'
import { restoreTables } from '../../src/backup/restore.ts'
import { loadFile } from '../../src/load.ts'
import { wholeFromEnv } from '../../src/env.ts'
import { freshDatabase, listenApi } from '../support.ts'
import { asCsv, batch, hostileRow, mutatedRow, PARENTS, validRow } from '../generators.ts'
import { instantOf, judge, num, obj, TABLES, toJson, trim, type Json, type Row, type State, type Value } from '../oracle.ts'

const seed = wholeFromEnv('FUZZ_SEED', 20261201, { min: 0 })
const scale = wholeFromEnv('FUZZ_SCALE', 1)
// Shrinking a failing batch of 1000 rows re-runs it against the database many times: a
// failure is reported, shrunk as far as it got, after at most this long.
const settings = (numRuns: number) => ({
  seed,
  numRuns: Math.ceil(numRuns * scale),
  includeErrorInReport: true,
  interruptAfterTimeLimit: wholeFromEnv('FUZZ_TIME_LIMIT', 150_000) * scale,
  markInterruptAsFailure: true,
})
console.log(`# properties: seed ${seed}, scale ${scale} (replay: npm run fuzz -- --seed ${seed})`)

const db = await freshDatabase()
const { sql } = db
const backupDir = await mkdtemp(join(tmpdir(), 'hirebase-properties-'))
const { base } = await listenApi({ databaseUrl: db.url, backupDir })

// Departments and jobs 1..PARENTS exist; ids above do not (unknown_reference).
for (const table of ['departments', 'jobs']) {
  const rows = Array.from({ length: PARENTS }, (_, i) =>
    obj([
      [TABLES[table][0].field, num(String(i + 1))],
      [TABLES[table][1].field, `${table} ${i + 1}`],
    ]),
  )
  await sql`call ingest_batch(${table}, ${`[${rows.map(toJson).join(',')}]`})`
}

/** What is stored, as the oracle's typed values (instants in epoch microseconds). */
async function readState(): Promise<State> {
  const state: State = {}
  for (const table of Object.keys(TABLES)) {
    const columns = TABLES[table].map((f) =>
      f.kind === 'datetime'
        ? sql`(extract(epoch from ${sql(f.field)}) * 1000000)::bigint::text`
        : f.kind === 'id'
          ? sql`${sql(f.field)}::text`
          : sql`${sql(f.field)}`,
    )
    const select = columns.reduce((all, c, i) => (i ? sql`${all}, ${c}` : c))
    const rows = await sql`select ${select} from ${sql('data')}.${sql(table)}`.values()
    state[table] = new Map(rows.map((r) => [BigInt(r[0]), TABLES[table].map((f, i) => (f.kind === 'name' ? r[i] : BigInt(r[i])) as Value)]))
  }
  return state
}

const sorted = (reasons: string[]) => [...reasons].sort()
const rejectsOf = async (batchId: unknown) =>
  new Map(
    (await sql`select position::int, reasons from ingest_rejects where batch_id = ${String(batchId)}`).map((r) => [
      r.position as number,
      sorted(r.reasons),
    ]),
  )

/** CSV text of records quoted the RFC 4180 way, lines ended by CRLF, LF or CR in turn; and each record's first line. */
function csvText(records: string[][], endings: string[]): { text: string; lines: number[] } {
  const lines: number[] = []
  let line = 1
  const text = records
    .map((fields, i) => {
      lines.push(line)
      const record = fields.map((f) => `"${f.replaceAll('"', '""')}"`).join(',')
      line += 1 + (record.match(/\r\n|\r|\n/g)?.length ?? 0)
      return record + endings[i % endings.length]
    })
    .join('')
  return { text, lines }
}

describe('differential: the database judges generated rows as the oracle does', () => {
  test('at least 100,000 rows, half of them mutated, through psql CALL and the CSV loader', async () => {
    let judged = 0
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom('departments', 'jobs', 'employees')
          .chain((table) =>
            fc.tuple(
              fc.constant(table),
              batch(table, 500, 1000, 3000),
              fc.boolean(),
              fc.shuffledSubarray(['\r\n', '\n', '\r'], { minLength: 1 }),
            ),
          ),
        async ([table, rows, viaCsv, endings]) => {
          const state = await readState()
          if (viaCsv) {
            // (a record of no field, or of one empty field, is a blank line: skipped, not judged)
            const records = rows
              .map((r) => asCsv(table, r))
              .filter((r): r is string[] => r !== undefined && (r.length > 1 || (r.length === 1 && r[0] !== '')))
            const { text, lines } = csvText(records, endings)
            const file = join(await mkdtemp(join(tmpdir(), 'hirebase-prop-csv-')), `${table}.csv`)
            await writeFile(file, text)
            const result = await loadFile(sql, table, file)
            const got = await rejectsOf(result.batch.batch_id)
            const expected = judge(
              table,
              records.map((csv) => ({ csv })),
              state,
            )
            expected.forEach((reasons, i) =>
              assert.deepEqual(
                got.get(lines[i]) ?? [],
                sorted(reasons),
                `${table} CSV record at line ${lines[i]}: ${JSON.stringify(records[i])}`,
              ),
            )
            judged += records.length
          } else {
            const [out] = await sql`call ingest_batch(${table}, ${`[${rows.map(toJson).join(',')}]`})`
            const got = await rejectsOf(out.batch_id)
            const expected = judge(
              table,
              rows.map((json) => ({ json })),
              state,
            )
            expected.forEach((reasons, i) =>
              assert.deepEqual(got.get(i + 1) ?? [], sorted(reasons), `${table} row ${i + 1}: ${toJson(rows[i])}`),
            )
            assert.equal(out.rejected, expected.filter((r) => r.length).length)
            judged += rows.length
          }
        },
      ),
      settings(200),
    )
    assert.ok(judged >= 100_000 * scale, `only ${judged} rows judged`)
  })
})

describe('round trip: valid values come back exactly, trimmed', () => {
  let nextId = 1_000_000
  const generated = fc.array(validRow('employees', fc.constant(0)), { minLength: 1, maxLength: 30 })
  // Fresh ids at run time, not in the arbitrary: a shrunk re-run must not meet its own rows.
  const withFreshIds = (rows: Json[]) =>
    rows.map((r) => obj((r as { obj: [string, Json][] }).obj.map(([k, v]) => [k, k === 'employee_id' ? num(String(nextId++)) : v])))

  /** The oracle's values of a valid employees row: id, trimmed name, instant, department, job. */
  const expectedOf = (row: Json): [bigint, string, bigint, bigint, bigint] => {
    const v = new Map((row as { obj: [string, Json][] }).obj)
    const id = (x: Json | undefined) => BigInt(typeof x === 'string' ? trim(x) : (x as { num: string }).num)
    return [
      id(v.get('employee_id')),
      trim(v.get('employee_name') as string),
      instantOf(trim(v.get('hiring_date') as string))!,
      id(v.get('department_id')),
      id(v.get('job_id')),
    ]
  }

  async function checkStored(rows: Json[]) {
    const expected = rows.map(expectedOf)
    const ids = expected.map((e) => String(e[0]))
    const stored = await sql`select employee_id::text, employee_name, (extract(epoch from hiring_date) * 1000000)::bigint::text as micros,
      department_id::text, job_id::text from employees where employee_id = any(${ids}::int[]) order by employee_id`.values()
    assert.deepEqual(
      stored.map((r) => [BigInt(r[0]), r[1], BigInt(r[2]), BigInt(r[3]), BigInt(r[4])]),
      expected.sort((a, b) => Number(a[0] - b[0])),
    )
    for (const [id, name, micros] of expected.slice(0, 3)) {
      const res = await fetch(`${base}/tables/employees/rows/${id}`)
      const row = await res.json()
      assert.deepEqual([row.employee_name, instantOf(row.hiring_date)], [name, micros], `GET ${id}`)
    }
  }

  const paths: [string, (rows: Json[]) => Promise<void>][] = [
    [
      'psql CALL',
      async (rows) => {
        await sql`call ingest_batch('employees', ${`[${rows.map(toJson).join(',')}]`})`
      },
    ],
    [
      'JSON API batch',
      async (rows) => {
        const res = await fetch(`${base}/tables/employees/rows`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: `[${rows.map(toJson).join(',')}]`,
        })
        assert.equal(res.status, 200)
      },
    ],
    [
      'text/csv body',
      async (rows) => {
        const res = await fetch(`${base}/tables/employees/rows`, {
          method: 'POST',
          headers: { 'content-type': 'text/csv' },
          body: csvText(
            rows.map((r) => asCsv('employees', r)!),
            ['\r\n', '\n'],
          ).text,
        })
        assert.equal(res.status, 200)
      },
    ],
    [
      'CSV file',
      async (rows) => {
        const file = join(await mkdtemp(join(tmpdir(), 'hirebase-prop-rt-')), 'employees.csv')
        await writeFile(
          file,
          csvText(
            rows.map((r) => asCsv('employees', r)!),
            ['\n', '\r\n', '\r'],
          ).text,
        )
        await loadFile(sql, 'employees', file)
      },
    ],
  ]
  for (const [name, ingest] of paths) {
    test(`through ${name}, read back through SQL and GET`, async () => {
      await fc.assert(
        fc.asyncProperty(generated, async (generatedRows) => {
          const rows = withFreshIds(generatedRows)
          await ingest(rows)
          await checkStored(rows)
        }),
        settings(25),
      )
    })
  }

  test('and through a backup and a restore', async () => {
    // (as text: JS dates cannot hold every instant exactly, and misread years below 1000)
    const table = () => sql`select employee_id, employee_name, hiring_date::text, department_id, job_id from employees order by employee_id`
    const before = await table()
    assert.ok(before.length > 100)
    const backup = await backupTable(sql, 'employees', { dir: backupDir, keep: 7 })
    await sql`delete from employees where employee_id >= 1000000`
    await restoreTables(sql, ['employees'], { dir: backupDir, keep: 7, files: { employees: backup.file } })
    assert.deepEqual(await table(), before)
  })
})

describe('isolation: any row beside a valid one costs itself only', () => {
  let nextId = 2_000_000
  const other: fc.Arbitrary<{ text: Buffer; expect?: Row }> = fc.oneof(
    fc
      .oneof(validRow('jobs', fc.integer({ min: 1, max: 50 })), mutatedRow('jobs', fc.integer({ min: 1, max: 50 })))
      .map((json) => ({ text: Buffer.from(toJson(json)), expect: undefined })),
    hostileRow,
  )

  test('through the JSON API (any bytes) and psql CALL (any text)', async () => {
    await fc.assert(
      fc.asyncProperty(other, async ({ text, expect }) => {
        const id = nextId++
        const valid = Buffer.from(`{"job_id": ${id}, "job_name": "valid ${id}"}`)
        const res = await fetch(`${base}/tables/jobs/rows`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: Buffer.concat([Buffer.from('['), valid, Buffer.from(','), text, Buffer.from(']')]) as BodyInit,
        })
        const text2 = await res.text()
        assert.equal(res.status, 200, text2.slice(0, 500))
        const answer = JSON.parse(text2)
        assert.equal(answer.received, 2)
        assert.ok(!answer.rejects.some((r: { position: number }) => r.position === 1), text2.slice(0, 500))
        if (expect && 'unstorable' in expect)
          assert.deepEqual(answer.rejects.find((r: { position: number }) => r.position === 2)?.reasons, [expect.unstorable])
        if (text.includes(0) || !text.equals(Buffer.from(text.toString('utf8')))) return // psql sends neither NUL nor bytes that are not UTF-8
        const id2 = nextId++
        const [out] = await sql`call ingest_batch('jobs', ${`[{"job_id": ${id2}, "job_name": "valid"}, ${text.toString('utf8')}]`})`
        assert.equal(out.received, 2)
        assert.equal((await sql`select count(*)::int as n from jobs where job_id = ${id2}`)[0].n, 1)
      }),
      settings(300),
    )
  })
})
