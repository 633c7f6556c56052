// A restore refuses what ingest refuses, property-tested: generated Avro backups of employees
// (as another tool could write them: ids as int or long, hiring_date as an RFC 3339 string or
// timestamp-micros) hold valid and invalid values, and an oracle written here from the README
// (the ingest rules, and "names trimmed as ingest stores them") says which rows a restore may
// take. Checked for each file:
//   - the restore succeeds exactly when the oracle finds every row valid (and no id twice);
//   - on refusal the table and the backup folder are as they were, and the error names a
//     refused row (its record number or id), the field and the rule;
//   - on success the table holds the file's rows, and a backup of it holds them again.
// `npm test` runs it with a fixed seed; `npm run fuzz` longer (FUZZ_SEED, FUZZ_SCALE).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { test } from 'node:test'
import avro from 'avsc'
import fc from 'fast-check'
import { avroType } from '../../src/backup/avro.ts'
import { readBackupFile } from '../../src/backup/read.ts'
import { restoreTables } from '../../src/backup/restore.ts'
import { backupTable } from '../../src/backup/write.ts'
import { freshDatabase } from '../support.ts'
import { validDatetime, validName, WHITE_SPACE } from '../generators.ts'
import { instantOf, MAX_INSTANT, MIN_INSTANT, trim } from '../oracle.ts'

const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const scale = Number(process.env.FUZZ_SCALE ?? 1)

const db = await freshDatabase()
const { sql } = db
const dir = await mkdtemp(join(tmpdir(), 'hirebase-restore-property-'))
const options = { dir, keep: 2 }
const PARENTS = 10
for (const table of ['departments', 'jobs']) {
  const rows = Array.from({ length: PARENTS }, (_, i) => ({
    [`${table.slice(0, -1)}_id`]: i + 1,
    [`${table.slice(0, -1)}_name`]: `${table} ${i + 1}`,
  }))
  await sql`call ingest_batch(${table}, ${sql.json(rows)})`
}

type Shape = { ids: 'int' | 'long'; date: 'string' | 'micros' }
interface Employee {
  employee_id: number
  employee_name: string
  hiring_date: string | bigint
  department_id: number
  job_id: number
}

// ---- the oracle (README: the ingest rules; names as ingest stores them, i.e. trimmed) ----
const BAD_TEXT = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/u
const MAX_ID = 2 ** 31 - 1
/** The rules a row breaks, as [field, rule] pairs. */
function problems(row: Employee, parents: Set<number>): [string, string][] {
  const out: [string, string][] = []
  const id = (field: keyof Employee) => {
    const v = row[field] as number
    if (!(v >= 1 && v <= MAX_ID)) out.push([field, 'out_of_range'])
  }
  id('employee_id')
  const name = row.employee_name
  if (trim(name) === '') out.push(['employee_name', 'missing'])
  else if (trim(name) !== name) out.push(['employee_name', 'not trimmed'])
  else if ([...name].length > 255) out.push(['employee_name', 'too_long'])
  else if (BAD_TEXT.test(name) || name.includes('\0')) out.push(['employee_name', 'bad_text'])
  const at = typeof row.hiring_date === 'bigint' ? row.hiring_date : instantOf(row.hiring_date)
  if (at === undefined || at < MIN_INSTANT || at > MAX_INSTANT) out.push(['hiring_date', 'bad_datetime'])
  for (const ref of ['department_id', 'job_id'] as const) {
    id(ref)
    if (!parents.has(row[ref])) out.push([ref, 'unknown_reference'])
  }
  return out
}
/** How refusals name the rule broken. */
const RULE =
  /bad_encoding|out_of_range|out of range|missing|not trimmed|too_long|bad_text|0x00|bad_datetime|RFC 3339|more than once|is not in/
const instant = (v: string | bigint) => (typeof v === 'bigint' ? v : instantOf(v)!)

// ---- the generators ----
const INT_BOUNDS = [0, -1, 1, MAX_ID, -(2 ** 31)]
const LONG_BOUNDS = [2 ** 31, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER]
const idOf = (shape: Shape, pool: number) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 1, max: pool }) },
    { weight: 1, arbitrary: fc.constantFrom(...INT_BOUNDS, ...(shape.ids === 'long' ? LONG_BOUNDS : [])) },
  )
const pad = fc.string({ unit: fc.constantFrom(...WHITE_SPACE), minLength: 1, maxLength: 2 })
const goodName = validName.map(trim)
const nameArb = fc.oneof(
  { weight: 6, arbitrary: goodName },
  { weight: 1, arbitrary: fc.tuple(pad, goodName, fc.boolean()).map(([p, n, left]) => (left ? p + n : n + p)) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\u3000', 'x'.repeat(255), 'é'.repeat(255), 'x'.repeat(256), '😀'.repeat(256)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        goodName,
        fc.constantFrom('\u0001', '\u001f', '\u007f', '\u0085', '\u009f', '\u2028', '\u202e', '\u2066', '\t', '\n', '\0'),
        goodName,
      )
      .map(([a, c, b]) => a + c + b),
  },
)
const two = (n: number) => String(n).padStart(2, '0')
const dateArb = (shape: Shape): fc.Arbitrary<string | bigint> =>
  shape.date === 'micros'
    ? fc.oneof(
        { weight: 6, arbitrary: fc.bigInt(MIN_INSTANT, MAX_INSTANT) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(MIN_INSTANT, MAX_INSTANT, MIN_INSTANT - 1n, MAX_INSTANT + 1n, -(2n ** 63n), 2n ** 63n - 1n, 0n),
        },
      )
    : fc.oneof(
        { weight: 6, arbitrary: validDatetime },
        { weight: 1, arbitrary: fc.tuple(pad, validDatetime).map(([p, d]) => d + p) },
        {
          weight: 2,
          // every offset to +-23:59 and beyond, at the ends of the years allowed
          arbitrary: fc
            .tuple(
              fc.constantFrom(
                '0000-12-31T23:59:59',
                '0001-01-01T00:00:00',
                '2021-06-01T12:30:00.5',
                '9999-12-31T23:59:59.999999',
                '10000-01-01T00:00:00',
              ),
              fc.constantFrom('+', '-'),
              fc.integer({ min: 0, max: 24 }),
              fc.integer({ min: 0, max: 60 }),
            )
            .map(([t, s, h, m]) => `${t}${s}${two(h)}:${two(m)}`),
        },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            '2021-02-29T00:00:00Z',
            '2021-06-01T24:00:00Z',
            '2021-06-01T00:00:00',
            '2021-06-01 00:00:00Z',
            '2021-06-01T00:00:00.1234567Z',
            '2021-06-01T00:00:00.1234560Z',
            '2021-06-01T00:00:00+05',
            '2024-02-29T00:00:00z',
          ),
        },
      )
const rowArb = (shape: Shape, pool: number): fc.Arbitrary<Employee> =>
  fc.record({
    employee_id: idOf(shape, pool),
    employee_name: nameArb,
    hiring_date: dateArb(shape),
    department_id: fc.oneof(
      { weight: 9, arbitrary: fc.integer({ min: 1, max: PARENTS }) },
      { weight: 1, arbitrary: idOf(shape, PARENTS + 1) },
    ),
    job_id: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: PARENTS }) }, { weight: 1, arbitrary: idOf(shape, PARENTS + 1) }),
  })
const fileArb = fc
  .record({ ids: fc.constantFrom<Shape['ids']>('int', 'long'), date: fc.constantFrom<Shape['date']>('string', 'micros') })
  .chain((shape) => fc.tuple(fc.constant(shape), fc.array(rowArb(shape, 40), { maxLength: 6 })))

// ---- the file, the table, the folder ----
let files = 0
async function writeFile(shape: Shape, rows: Employee[]): Promise<string> {
  const name = `generated-${++files}.avro`
  const id = shape.ids
  const type = avroType({
    type: 'record',
    name: 'employees',
    fields: [
      { name: 'employee_id', type: id },
      { name: 'employee_name', type: 'string' },
      { name: 'hiring_date', type: shape.date === 'string' ? 'string' : { type: 'long', logicalType: 'timestamp-micros' } },
      { name: 'department_id', type: id },
      { name: 'job_id', type: id },
    ],
  } as avro.Schema)
  const encoder = new avro.streams.BlockEncoder(type, { writeHeader: 'always' } as never)
  const written = pipeline(encoder, createWriteStream(join(dir, 'employees', name)))
  const asLong = (n: number) => (id === 'long' ? BigInt(n) : n)
  for (const r of rows)
    encoder.write({ ...r, employee_id: asLong(r.employee_id), department_id: asLong(r.department_id), job_id: asLong(r.job_id) })
  encoder.end()
  await written
  return name
}

/** What a table holds, in id order: [id, name, instant in microseconds, department, job]. */
type Stored = [number, string, bigint, number, number]
const stored = async (): Promise<Stored[]> =>
  (
    await sql<{ id: number; name: string; at: string; d: number; j: number }[]>`
      select employee_id as id, employee_name as name, (extract(epoch from hiring_date) * 1000000)::bigint::text as at, department_id as d, job_id as j
        from data.employees order by employee_id`
  ).map((r) => [r.id, r.name, BigInt(r.at), r.d, r.j])

/** Every file under the backup folder with its SHA-256. */
async function folder(): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    out.set(
      path,
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    )
  }
  return out
}

test('an empty table backs up to an Avro file that restores (found by the property below: it was 0 bytes, "not an Avro file")', async () => {
  assert.equal((await stored()).length, 0)
  const backup = await backupTable(sql, 'employees', options)
  const check = await readBackupFile(
    backup.path,
    () => {},
    () => assert.fail('no records'),
  )
  assert.equal(check.rows, 0)
  const result = await restoreTables(sql, ['employees'], { ...options, files: { employees: backup.file } })
  assert.deepEqual([result.tables[0].rows_before, result.tables[0].rows_after], [0, 0])
  // ... and so does the pre-restore snapshot of the empty table, which undoes it.
  await restoreTables(sql, ['employees'], { ...options, files: { employees: result.tables[0].snapshot } })
})

/** A restore of `rows` (written as `shape`) is refused with `code` and a message matching `message`. */
async function refusal(shape: Shape, rows: Employee[], code: string, message: RegExp) {
  const name = await writeFile(shape, rows)
  await assert.rejects(restoreTables(sql, ['employees'], { ...options, files: { employees: name } }), { code, message })
  await rm(join(dir, 'employees', name))
}
const ann = (employee_id: number, change: Partial<Employee> = {}): Employee => ({
  employee_id,
  employee_name: 'B',
  hiring_date: '2021-01-01T00:00:00Z',
  department_id: 1,
  job_id: 1,
  ...change,
})

test('a date-time a restore refuses is named with its row and field (found by the property below: only the value was named)', () =>
  refusal(
    { ids: 'int', date: 'string' },
    [ann(7), ann(8, { hiring_date: '0000-12-31T23:59:59+00:00' })],
    'bad_backup_value',
    /for example bad_datetime:hiring_date: the date-time "0000-12-31T23:59:59\+00:00" in the backup is not an RFC 3339 instant in years 0001-9999 \(id 8\)/,
  ))

test('a NUL in a name is refused naming the record and field (found by the property below: COPY named neither)', () =>
  refusal(
    { ids: 'int', date: 'string' },
    [ann(7), ann(8, { employee_name: 'J\0Z' })],
    'bad_backup_value',
    /, record 2: employee_name holds a NUL character/,
  ))

test('an id beyond 2147483647 in a long is refused naming the row and field (found by the property below: COPY named neither)', () =>
  refusal(
    { ids: 'long', date: 'micros' },
    [ann(2 ** 31, { hiring_date: 0n })],
    'bad_backup_value',
    /for example out_of_range:employee_id \(id 2147483648\)/,
  ))

test('a row whose department is not there is named by its id (found by the property below: only the department was named)', () =>
  refusal(
    { ids: 'int', date: 'micros' },
    [ann(5, { hiring_date: 0n }), ann(6, { hiring_date: 0n, department_id: 77 })],
    '23503',
    /has 1 rows whose department_id is not in departments \(for example 77\), the first in the row of id 6/,
  ))

test('a restore takes exactly the files whose every row the oracle accepts; refusals name the row, field and rule and change nothing', async () => {
  const parents = new Set(Array.from({ length: PARENTS }, (_, i) => i + 1))
  let accepted = 0
  let refused = 0
  await fc.assert(
    fc.asyncProperty(fileArb, async ([shape, rows]) => {
      const name = await writeFile(shape, rows)
      try {
        const bad = rows.map((r) => problems(r, parents))
        const ids = rows.map((r) => r.employee_id)
        const twice = ids.filter((id, i) => ids.indexOf(id) !== i)
        const valid = bad.every((p) => p.length === 0) && twice.length === 0
        const before = await stored()
        const filesBefore = await folder()
        const outcome = await restoreTables(sql, ['employees'], { ...options, files: { employees: name } }).then(
          () => undefined,
          (err: Error & { code?: string }) => err,
        )
        if (valid) {
          accepted++
          assert.equal(outcome, undefined, `refused a valid file (${JSON.stringify(shape)}): ${outcome?.message}`)
          const expected: Stored[] = rows
            .map((r): Stored => [r.employee_id, r.employee_name, instant(r.hiring_date), r.department_id, r.job_id])
            .sort((a, b) => a[0] - b[0])
          assert.deepEqual(await stored(), expected)
          // ... and a backup of the table holds the same rows again.
          const backup = await backupTable(sql, 'employees', options)
          const again: Stored[] = []
          await readBackupFile(
            backup.path,
            () => {},
            (r) => {
              again.push([r.employee_id, r.employee_name, r.hiring_date, r.department_id, r.job_id] as Stored)
            },
          )
          assert.deepEqual(again, expected)
          return
        }
        refused++
        assert.ok(outcome, `took a file the oracle refuses: ${JSON.stringify(bad)} ${JSON.stringify(twice)}`)
        assert.deepEqual(await stored(), before, 'a refused restore changed the table')
        assert.deepEqual(await folder(), filesBefore, 'a refused restore changed the backup folder')
        // The error names a refused row (record number or id), its field and the rule.
        const message = outcome.message
        const named = rows.some((r, i) => {
          const rowNamed = new RegExp(`record ${i + 1}\\b|\\b(id|example) ${r.employee_id}\\b`).test(message)
          if (twice.includes(r.employee_id) && rowNamed && /more than once/.test(message)) return true
          return rowNamed && bad[i].some(([field]) => message.includes(field)) && RULE.test(message)
        })
        assert.ok(
          named,
          `the error does not name a refused row, field and rule: ${outcome.code} ${message}\nrows: ${JSON.stringify(rows, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`,
        )
      } finally {
        await rm(join(dir, 'employees', name))
      }
    }),
    { seed, numRuns: Math.ceil(100 * scale), includeErrorInReport: true },
  )
  console.log(`# restore property: ${accepted} files taken, ${refused} refused`)
})
