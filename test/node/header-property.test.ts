// The header rule of load.mjs, property-tested. The CSV files have no header (README); a
// first record that looks like one refuses the file unless --header skips it. What "looks
// like one" means is documented with the rule (sql/procedures/230-load.header.sql): its first
// field is not a number, every field is a word (letters, spaces, - and _), and at least one is
// a field of the table, a part of one's name (department, id) or a field's kind (datetime).
// The oracle below is that sentence, written again from the data dictionary of the README:
//   rule   runner.looks_like_header agrees with the oracle on generated first records: real
//          headers in other spellings, cases, spaces, and data rows that look header-ish;
//   load   loading a file whose first line is generated (quoted or not) refuses it exactly
//          when the oracle says header; with --header the first record is skipped, unless it
//          looks like data (a number first), which refuses the file.
// `npm test` runs it with a fixed seed; `npm run fuzz` longer (FUZZ_SEED, FUZZ_SCALE).
import assert from 'node:assert/strict'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import fc from 'fast-check'
import { loadFile } from '../../src/load.ts'
import { freshDatabase } from '../support.ts'
import { TABLES } from '../oracle.ts'

const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const scale = Number(process.env.FUZZ_SCALE ?? 1)
const runs = (n: number) => ({ seed, numRuns: Math.ceil(n * scale), includeErrorInReport: true })

const db = await freshDatabase()
const { sql } = db
await sql`call ingest_batch('departments', ${sql.json([{ department_id: 1, department_name: 'Legal' }])})`
await sql`call ingest_batch('jobs', ${sql.json([{ job_id: 1, job_name: 'Counsel' }])})`

// ---- the oracle ----
const KINDS: Record<string, string> = { id: 'id', name: 'name', datetime: 'datetime' }
/** The words that name something of `table`: its fields, their parts, their kinds. */
const known = (table: string) => new Set(TABLES[table].flatMap((f) => [f.field, KINDS[f.kind], ...f.field.split('_')]))
const SPACE = '[ \\t\\n\\r\\f\\v]'
/** A first record that is data: its first field a whole number (an id). */
const looksLikeRecord = (fields: string[]) => new RegExp(`^${SPACE}*[0-9]+${SPACE}*$`).test(fields[0] ?? '')
function looksLikeHeader(table: string, fields: string[]): boolean {
  if (looksLikeRecord(fields)) return false // a number first: data
  const words = fields.map((f) =>
    f
      .replace(new RegExp(`^${SPACE}+|${SPACE}+$`, 'g'), '')
      .toLowerCase()
      .replace(new RegExp(`(${SPACE}|-)+`, 'g'), '_'),
  )
  // A word: letters (ASCII, as the files' field names), spaces, - and _. An empty field says
  // nothing either way (a header may leave a column unnamed): the documented sentence leaves
  // this open, the code reads it so.
  if (!words.every((w) => /^[a-z_]*$/.test(w))) return false
  const names = known(table)
  return words.some((w) => names.has(w))
}

// ---- the generators ----
const tableArb = fc.constantFrom('departments', 'jobs', 'employees')
const caseOf = (s: string) =>
  fc
    .constantFrom<(w: string) => string>(
      (w) => w,
      (w) => w.toUpperCase(),
      (w) => w.replace(/(^|_)([a-z])/g, (_, a, c) => a + c.toUpperCase()),
    )
    .map((f) => f(s))
/** A field's name as someone might have written it in a header. */
const spelling = (field: string) =>
  fc
    .tuple(
      fc.constantFrom(field, field.replaceAll('_', ' '), field.replaceAll('_', '-'), field.replaceAll('_', ''), ...field.split('_')),
      fc.constantFrom('', ' ', '  ', '\t'),
      fc.constantFrom('', ' ', '\t'),
    )
    .chain(([w, a, b]) => caseOf(w).map((c) => a + c + b))
const OTHER = [
  'Legal',
  'Sales',
  'department',
  'Department',
  'id',
  'Name',
  'datetime',
  'hiring date',
  'x',
  'foo bar',
  'Ingeniería',
  'R2D2',
  '',
]
const dataish = fc.oneof(
  fc.constantFrom(...OTHER),
  fc.integer({ min: -5, max: 3000 }).map(String),
  fc.constantFrom(' 7 ', '007', '+5', '7.0', '2021-11-07T02:48:42Z', 'Sales, "EMEA"', 'a_b', 'a-b', '_', '-', ' '),
)
/** A first record of `table`: a header in some spelling, a data row, or a mix; sometimes one field too many or few. */
const firstRecord = (table: string) =>
  fc
    .tuple(
      fc.tuple(...TABLES[table].map((f) => fc.oneof({ weight: 3, arbitrary: spelling(f.field) }, { weight: 2, arbitrary: dataish }))),
      fc.constantFrom(0, 0, 0, 1, -1),
    )
    .map(([fields, change]) => (change > 0 ? [...fields, 'extra'] : change < 0 && fields.length > 1 ? fields.slice(1) : fields))

test('runner.looks_like_header agrees with the documented rule on generated first records', async () => {
  let headers = 0
  await fc.assert(
    fc.asyncProperty(
      tableArb.chain((t) => fc.tuple(fc.constant(t), firstRecord(t))),
      async ([table, fields]) => {
        const [{ h }] = await sql<{ h: boolean }[]>`select runner.looks_like_header(${table}, ${fields}) as h`
        const expected = looksLikeHeader(table, fields)
        if (expected) headers++
        assert.equal(h, expected, `${table}: ${JSON.stringify(fields)}`)
      },
    ),
    runs(1000),
  )
  console.log(`# header rule: ${headers} of ${Math.ceil(1000 * scale)} first records were headers`)
})

/** A CSV field: quoted when it must be, and sometimes when it need not be. */
const csvField = (value: string, quote: boolean) =>
  quote || /[",\r\n]/.test(value) || value === '' ? `"${value.replaceAll('"', '""')}"` : value
const dataRow = (table: string) =>
  table === 'employees' ? ['1', 'Ann', '2021-11-07T02:48:42Z', '1', '1'] : ['1', table === 'jobs' ? 'Counsel' : 'Legal']

test('load.mjs: a file is refused exactly when its first line looks like a header; --header skips the first record unless it looks like data', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-header-property-'))
  let n = 0
  await fc.assert(
    fc.asyncProperty(
      tableArb.chain((t) => fc.tuple(fc.constant(t), firstRecord(t), fc.boolean(), fc.boolean())),
      async ([table, fields, quote, header]) => {
        const file = join(dir, `${table}-${++n}.csv`)
        await writeFile(file, `${fields.map((f) => csvField(f, quote)).join(',')}\n${dataRow(table).join(',')}\n`)
        // Rolled back: every run starts from the same tables.
        const outcome = await sql
          .begin(async (tx) => {
            const result = await loadFile(tx, table, file, { header })
            throw Object.assign(new Error('rollback'), { result })
          })
          .catch((err: Error & { result?: Awaited<ReturnType<typeof loadFile>> }) => err)
        const refused = !outcome.result
        if (!header && looksLikeHeader(table, fields)) {
          assert.ok(refused, `not refused: ${JSON.stringify(fields)}`)
          assert.match(outcome.message, /line 1: refused: it looks like a header/)
          return
        }
        // A line of one empty field ("") is read as a blank line, which the loader skips; then
        // --header skips the first record after it (the README says so).
        const blank = fields.length === 1 && fields[0] === ''
        // With --header, a first record that looks like data (a number first) refuses the file:
        // skipping it would lose a row (runner.looks_like_record).
        if (header && looksLikeRecord(blank ? dataRow(table) : fields)) {
          assert.ok(refused, `not refused with --header: ${JSON.stringify(fields)}`)
          assert.match(outcome.message, /refused: --header skips the first line, but it looks like data/)
          return
        }
        assert.ok(!refused, `${JSON.stringify(fields)} (header: ${header}): ${outcome.message}`)
        const batch = outcome.result!.batch
        assert.equal(batch.received, (header ? 1 : 2) - Number(blank), `${JSON.stringify(fields)} (header: ${header})`)
        // The data line is taken (unless --header skipped it after a blank line); a first line
        // that is no header is a row like any other.
        assert.ok(batch.rejected <= (header ? 0 : 1), `${batch.rejected} rejected`)
      },
    ),
    runs(60),
  )
})
