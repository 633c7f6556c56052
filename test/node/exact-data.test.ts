// Exact data, case by case: each value that an outside review found stored wrongly, or that
// failed a whole batch, is a named example here (the properties in properties.test.ts
// generate the rest).
// Long, as one file: a list of named examples on one database.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { loadDirectory, loadFile } from '../../src/load.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { freshDatabase, listenApi } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
const { base } = await listenApi({ databaseUrl: db.url })

/** POSTs raw bytes; returns the status, the raw text and the parsed body. */
async function post(path: string, body: string | Buffer, type = 'application/json', headers: Record<string, string> = {}) {
  const res = await fetch(base + path, { method: 'POST', body: body as BodyInit, headers: { 'content-type': type, ...headers } })
  const text = await res.text()
  return { status: res.status, text, body: JSON.parse(text) }
}
const get = async (path: string) => {
  const res = await fetch(base + path)
  const text = await res.text()
  return { status: res.status, text, body: JSON.parse(text) }
}
const reasonsOf = (answer: { body: { rejects: { position: number; reasons: string[] }[] } }) =>
  Object.fromEntries(answer.body.rejects.map((r) => [r.position, r.reasons]))
const csvFile = async (content: string | Buffer) => {
  const file = join(await mkdtemp(join(tmpdir(), 'hirebase-exact-csv-')), 'rows.csv')
  await writeFile(file, content)
  return file
}

await sql`call ingest_batch('departments', '[{"department_id": 1, "department_name": "Engineering"}]')`
await sql`call ingest_batch('jobs', '[{"job_id": 1, "job_name": "Engineer"}]')`
const employee = (id: number, hiringDate: string) => ({
  employee_id: id,
  employee_name: `E${id}`,
  hiring_date: hiringDate,
  department_id: 1,
  job_id: 1,
})

describe('trimming and names', () => {
  test("a trailing or leading v is kept (E'\\v' is the letter v in PostgreSQL)", async () => {
    await sql`call ingest_batch('jobs', '[{"job_id": 7601, "job_name": "Dev"}, {"job_id": 7602, "job_name": "vvv"}, {"job_id": 7603, "job_name": "v"}]')`
    const rows = await sql`select job_name from jobs where job_id between 7601 and 7603 order by job_id`
    assert.deepEqual(
      rows.map((r) => r.job_name),
      ['Dev', 'vvv', 'v'],
    )
    const answer = await post('/tables/jobs/rows', '[{"job_id": "v1", "job_name": "x"}, {"job_id": "1v", "job_name": "x"}]')
    assert.deepEqual(reasonsOf(answer), { 1: ['not_integer:job_id'], 2: ['not_integer:job_id'] })
  })

  test('Unicode White_Space is trimmed (vertical tab, U+00A0, U+3000); a name of it alone is missing', async () => {
    const answer = await post(
      '/tables/jobs/rows',
      JSON.stringify([
        { job_id: 7611, job_name: '\u000b\u3000 Trimmed\u00a0\u2003' },
        { job_id: 7612, job_name: '\u00a0' },
        { job_id: ' \u3000 7613\u000b', job_name: 'id trimmed too' },
        // found by the round-trip property: a leading line separator is White_Space, not bad_text
        { job_id: 7614, job_name: '\u2028u' },
      ]),
    )
    assert.equal(answer.status, 200)
    assert.deepEqual(reasonsOf(answer), { 2: ['missing:job_name'] })
    const rows = await sql`select job_id, job_name from jobs where job_id in (7611, 7613, 7614) order by job_id`
    assert.deepEqual(
      rows.map((r) => [r.job_id, r.job_name]),
      [
        [7611, 'Trimmed'],
        [7613, 'id trimmed too'],
        [7614, 'u'],
      ],
    )
  })

  test('bidi controls and line separators inside a name are bad_text', async () => {
    const answer = await post(
      '/tables/jobs/rows',
      JSON.stringify([
        { job_id: 7621, job_name: 'admin\u202Egnp.exe' },
        { job_id: 7622, job_name: 'two\u2028lines' },
        { job_id: 7623, job_name: 'iso\u2066late\u2069' },
        { job_id: 7624, job_name: 'C1\u0085control' },
        { job_id: 7625, job_name: 'Zero\u200Dwidth joiner is a letter here' },
      ]),
    )
    assert.deepEqual(reasonsOf(answer), {
      1: ['bad_text:job_name'],
      2: ['bad_text:job_name'],
      3: ['bad_text:job_name'],
      4: ['bad_text:job_name'],
    })
  })

  test('the sample load stores all 1929 names exactly as in the CSV, trimmed of whitespace', async () => {
    const sample = await freshDatabase()
    await loadDirectory(sample.sql, SAMPLE_DIR)
    const expected = new Map<number, string>()
    for (const line of (await readFile(join(SAMPLE_DIR, 'employees.csv'), 'utf8')).split(/\r\n|\n|\r/)) {
      const [id, name] = line.split(',')
      const trimmed = (name ?? '').replace(/^\p{White_Space}+|\p{White_Space}+$/gu, '')
      if (/^\d+$/.test(id ?? '') && trimmed) expected.set(Number(id), trimmed)
    }
    const stored = new Map(
      (await sample.sql`select employee_id, employee_name from employees`).map((r) => [r.employee_id, r.employee_name]),
    )
    assert.equal(stored.size, 1929)
    for (const [id, name] of stored) assert.equal(name, expected.get(id), `employee ${id}`)
    assert.equal(stored.get(208), 'Rasia Dimitriev')
  })
})

describe('date-times', () => {
  test('every RFC 3339 offset up to +-23:59 is read; one bad date-time costs its row only', async () => {
    const answer = await post(
      '/tables/employees/rows',
      JSON.stringify([
        employee(7701, '2021-06-01T00:00:00+16:00'),
        employee(7702, '2021-06-01T00:00:00-23:59'),
        employee(7703, '2021-06-01T00:00:00+24:00'),
        employee(7704, '2021-06-01T00:00:00.1234567Z'),
        employee(7705, '2021-06-01T00:00:00.1234560Z'),
      ]),
    )
    assert.equal(answer.status, 200)
    assert.deepEqual(reasonsOf(answer), { 3: ['bad_datetime:hiring_date'], 4: ['bad_datetime:hiring_date'] })
    const rows =
      await sql`select employee_id, internal.rfc3339(hiring_date) as at from employees where employee_id in (7701, 7702, 7705) order by 1`
    assert.deepEqual(
      rows.map((r) => r.at),
      ['2021-05-31T08:00:00Z', '2021-06-01T23:59:00Z', '2021-06-01T00:00:00.123456Z'],
    )
  })

  test('a long fraction or a 140,000-digit id costs its row, on every path (the parser or numeric used to fail the batch)', async () => {
    const longZeros = `2021-06-01T00:00:00.${'0'.repeat(140)}Z`
    const answer = await post(
      '/tables/employees/rows',
      JSON.stringify([
        employee(7721, longZeros),
        employee(7722, '2021-06-01T00:00:00.123000000+20:00'),
        { ...employee(7723, '2021-06-01T00:00:00Z'), employee_id: '9'.repeat(140_000) },
        employee(7724, '2021-06-01T00:00:00Z'),
      ]),
    )
    assert.equal(answer.status, 200, answer.text.slice(0, 300))
    assert.deepEqual(reasonsOf(answer), { 1: ['bad_datetime:hiring_date'], 3: ['out_of_range:employee_id'] })
    const [out] =
      await sql`call ingest_batch('jobs', ${`[{"job_id": "${'9'.repeat(140_000)}", "job_name": "x"}, {"job_id": 7725, "job_name": "fine"}]`})`
    assert.deepEqual([out.inserted, out.rejected], [1, 1])
    const file = await csvFile(`7726,Long,${longZeros},1,1\n7727,Fine,2021-06-01T00:00:00Z,1,1\n`)
    const loaded = await loadFile(sql, 'employees', file)
    assert.deepEqual([loaded.batch.inserted, loaded.batch.rejected], [1, 1])
  })

  test('a file with one +16:00 line loads, with every other line', async () => {
    const lines = Array.from({ length: 500 }, (_, i) => `${8000 + i},Name ${i},2021-01-01T00:00:00Z,1,1`)
    lines[250] = '8250,Far East,2021-06-01T00:00:00+16:00,1,1'
    const result = await loadFile(sql, 'employees', await csvFile(lines.join('\n')))
    assert.deepEqual([result.batch.inserted, result.batch.rejected], [500, 0])
  })

  test("a restore reads date-time strings of other tools' Avro files as the rule does, offsets beyond +-15:59 too", async () => {
    const [row] = await sql`select internal.rfc3339(internal.timestamptz_from_avro('2021-06-01T00:00:00.5+16:00')) as far,
      internal.rfc3339(internal.timestamptz_from_avro('1622505600000000')) as micros`
    assert.deepEqual(row, { far: '2021-05-31T08:00:00.5Z', micros: '2021-06-01T00:00:00Z' })
  })

  test('GET returns the microseconds, and posting the row back as read is unchanged', async () => {
    await post(
      '/tables/employees/rows',
      JSON.stringify([employee(7711, '2021-12-31T23:59:59.999999Z'), employee(7712, '2021-12-31T23:59:59.5+01:00')]),
    )
    const row = await get('/tables/employees/rows/7711')
    assert.equal(row.body.hiring_date, '2021-12-31T23:59:59.999999Z')
    assert.equal((await get('/tables/employees/rows/7712')).body.hiring_date, '2021-12-31T22:59:59.5Z')
    const again = await post('/tables/employees/rows', JSON.stringify([row.body]))
    assert.deepEqual([again.body.unchanged, again.body.rejected], [1, 0])
  })
})

describe('CSV line endings', () => {
  test('CRLF, LF and CR mixed in one file: no \\r left in a field, rejects at their physical line', async () => {
    const file = await csvFile('7801,First\r\n7802,"Quoted\r\nacross lines"\n7803,\n7804,Third\r7805,\r\n7806,Last')
    const result = await loadFile(sql, 'jobs', file)
    assert.deepEqual([result.batch.inserted, result.batch.rejected], [3, 3])
    const rejects = await sql`select position::int, reasons from ingest_rejects where batch_id = ${result.batch.batch_id} order by position`
    assert.deepEqual(
      rejects.map((r) => [r.position, r.reasons]),
      [
        [2, ['bad_text:job_name']],
        [4, ['missing:job_name']],
        [6, ['missing:job_name']],
      ],
    )
    const names = await sql`select job_name from jobs where job_id in (7801, 7804, 7806) order by job_id`
    assert.deepEqual(
      names.map((r) => r.job_name),
      ['First', 'Third', 'Last'],
    )
  })

  test('a stray quote in an unquoted field is part of the value, not the end of the file', async () => {
    const result = await loadFile(
      sql,
      'jobs',
      await csvFile('7811,John "Johnny" Doe\n7812, "Space then quote"\n7813,"abc"def\n7814,Fine\n'),
    )
    assert.deepEqual([result.batch.inserted, result.batch.rejected], [4, 0])
    const rows = await sql`select job_name from jobs where job_id between 7811 and 7814 order by job_id`
    assert.deepEqual(
      rows.map((r) => r.job_name),
      ['John "Johnny" Doe', '"Space then quote"', '"abc"def', 'Fine'],
    )
  })

  test('a text/csv body with CRLF and LF lines and a quoted comma', async () => {
    const answer = await post('/tables/jobs/rows', '7902,CSV Job\r\n7903,"Quoted, ""Job"""\n7904,Fine', 'text/csv')
    assert.equal(answer.status, 200, answer.text)
    assert.deepEqual([answer.body.inserted, answer.body.rejected], [3, 0])
    const rows = await sql`select job_name from jobs where job_id between 7902 and 7904 order by job_id`
    assert.deepEqual(
      rows.map((r) => r.job_name),
      ['CSV Job', 'Quoted, "Job"', 'Fine'],
    )
  })
})

describe('bytes PostgreSQL cannot store cost their row', () => {
  const latin1 = Buffer.from('[{"job_id": 8001, "job_name": "Caf\xe9"}, {"job_id": 8002, "job_name": "ok"}]', 'latin1')

  test('Latin-1 bytes and NUL in a JSON body: bad_encoding for that row, never U+FFFD stored', async () => {
    const answer = await post('/tables/jobs/rows', latin1)
    assert.equal(answer.status, 200, answer.text)
    assert.deepEqual(reasonsOf(answer), { 1: ['bad_encoding'] })
    const nul = await post(
      '/tables/jobs/rows',
      '[{"job_id": 8003, "job_name": "a\\u0000b"}, {"job_id": 8004, "job_name": "\\ud800"}, {"job_id": 8005, "job_name": "fine"}]',
    )
    assert.deepEqual(reasonsOf(nul), { 1: ['bad_encoding'], 2: ['bad_encoding'] })
    const raw = await post(
      '/tables/jobs/rows',
      Buffer.from('[{"job_id": 8006, "job_name": "raw\0nul"}, {"job_id": 8007, "job_name": "fine"}]'),
    )
    assert.deepEqual(reasonsOf(raw), { 1: ['bad_encoding'] })
    const stored = await sql`select job_id from jobs where job_id between 8001 and 8007 order by job_id`
    assert.deepEqual(
      stored.map((r) => r.job_id),
      [8002, 8005, 8007],
    )
  })

  test('Latin-1 bytes and NUL in a text/csv body', async () => {
    const body = Buffer.concat([Buffer.from('8011,Caf\xe9\n', 'latin1'), Buffer.from('8012,nul\0\n8013,fine\n')])
    const answer = await post('/tables/jobs/rows', body, 'text/csv')
    assert.deepEqual(reasonsOf(answer), { 1: ['bad_encoding'], 2: ['bad_encoding'] })
    assert.equal(answer.body.inserted, 1)
  })

  test('the same in psql: a \\u0000 escape costs its row, not the call', async () => {
    const [out] = await sql`call ingest_batch('jobs', '[{"job_id": 8021, "job_name": "a\\u0000b"}, {"job_id": 8022, "job_name": "fine"}]')`
    assert.deepEqual([out.inserted, out.rejected], [1, 1])
  })

  test('a content type in capitals is still CSV; a JSON body may start with a BOM', async () => {
    const csv = await post('/tables/jobs/rows', '8061,Capital CSV', 'Text/CSV; charset=utf-8')
    assert.deepEqual([csv.status, csv.body.inserted], [200, 1])
    const bom = await post(
      '/tables/jobs/rows',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('[{"job_id": 8062, "job_name": "After a BOM"}]')]),
    )
    assert.deepEqual([bom.status, bom.body.inserted], [200, 1])
  })

  test('a dry run of a refused body writes nothing, not even the refusal', async () => {
    const before = (await sql`select count(*)::int as n from ingest_batches`)[0].n
    for (const body of ['[1,', '[]']) {
      const answer = await post('/tables/jobs/rows?dry_run=true', body)
      assert.deepEqual([answer.status, answer.body.batch_id, answer.body.dry_run], [400, null, true])
    }
    assert.equal((await sql`select count(*)::int as n from ingest_batches`)[0].n, before)
  })

  test('a body that is not JSON at all is refused whole and logged', async () => {
    const answer = await post('/tables/jobs/rows', '[{"job_id": 8031, "job_name": "a\\u0000b"}, {oops}]')
    assert.equal(answer.status, 400)
    assert.equal(answer.body.error.code, 'malformed_json')
    const [logged] = await sql`select error_code from ingest_batches where batch_id = ${answer.body.batch_id}`
    assert.equal(logged.error_code, 'malformed_json')
  })
})

describe('what the API echoes and reads', () => {
  test('reject echoes keep big numbers exactly (no JS double on the way)', async () => {
    const answer = await post('/tables/jobs/rows', '[{"job_id": 12345678901234567890, "job_name": "Big"}]')
    assert.match(answer.text, /"job_id": 12345678901234567890\b/)
    assert.deepEqual(reasonsOf(answer), { 1: ['out_of_range:job_id'] })
    const rejects = await get(`/ingest/batches/${answer.body.batch_id}/rejects`)
    assert.match(rejects.text, /"job_id": 12345678901234567890\b/)
  })

  test('a 5,000-deep nested array in a valid batch: the row is rejected, replays and reads answer 200', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000)
    const body = `[{"job_id": 8041, "job_name": "fine"}, {"job_id": 8042, "job_name": ${deep}}]`
    const headers = { 'idempotency-key': 'deep-nesting-1' }
    const first = await post('/tables/jobs/rows', body, 'application/json', headers)
    assert.equal(first.status, 200)
    assert.deepEqual(reasonsOf(first), { 2: ['bad_text:job_name'] })
    const retry = await post('/tables/jobs/rows', body, 'application/json', headers)
    assert.deepEqual([retry.status, retry.body.replayed, retry.body.batch_id], [200, true, first.body.batch_id])
    assert.equal((await get(`/ingest/batches/${first.body.batch_id}/rejects`)).status, 200)
  })

  test('1e200000 costs its row (unreadable), not the batch', async () => {
    const answer = await post('/tables/jobs/rows', '[{"job_id": 1e200000, "job_name": "Huge"}, {"job_id": 8051, "job_name": "fine"}]')
    assert.equal(answer.status, 200, answer.text)
    assert.deepEqual(reasonsOf(answer), { 1: ['unreadable'] })
    assert.equal(answer.body.inserted, 1)
  })

  test('values out of range in a request are 400 naming the parameter, not a backup error', async () => {
    for (const [path, parameter] of [
      ['/tables/jobs/rows?after_id=3000000000', 'after_id'],
      ['/ingest/batches/99999999999999999999/rejects', 'batch_id'],
      ['/ingest/batches/1/rejects?after_position=1e200000', 'after_position'],
      ['/tables/jobs/rows/1e200000', 'id'],
    ]) {
      const answer = await get(path)
      assert.deepEqual([answer.status, answer.body.error.code], [400, `bad_parameter:${parameter}`], path)
    }
  })
})
