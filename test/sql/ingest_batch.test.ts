// The data-dictionary rules and ingest_batch, called with SQL as psql would.
// Long, as one file: the rules' cases, one database, one helper per call shape.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { before, describe, test } from 'node:test'
import { connect } from '../../src/database.ts'
import { freshDatabase, type TestDatabase } from '../support.ts'

const db: TestDatabase = await freshDatabase()
const hasPsql = (() => { try { execFileSync('psql', ['--version']); return true } catch { return false } })()

interface Outcome { batch_id: string; received: number; inserted: number; unchanged: number; rejected: number }

async function ingest(table: string, rows: unknown): Promise<Outcome> {
  const [out] = await db.sql<Outcome[]>`call ingest_batch(${table}, ${db.sql.json(rows as never)})`
  return out
}

async function rejectsOf(batchId: string): Promise<{ position: number; reasons: string[]; payload: unknown }[]> {
  return db.sql`select position::integer, reasons, payload from ingest_rejects where batch_id = ${batchId} order by position`
}

/** The reasons a single row gets, or [] when it is accepted. */
async function reasonsFor(table: string, row: unknown): Promise<string[]> {
  const out = await ingest(table, [row])
  if (out.rejected === 0) return []
  const [reject] = await rejectsOf(out.batch_id)
  return reject.reasons
}

before(async () => {
  await ingest('departments', [{ department_id: 1, department_name: 'Engineering' }, { department_id: 2, department_name: 'Sales' }])
  await ingest('jobs', [{ job_id: 1, job_name: 'Analyst' }, { job_id: 2, job_name: 'Engineer' }])
})

const employee = (over: Record<string, unknown>) =>
  ({ employee_id: 100, employee_name: 'Ada Lovelace', hiring_date: '2021-07-27T16:02:08Z', department_id: 1, job_id: 1, ...over })

let nextId = 1000
const fresh = (over: Record<string, unknown> = {}) => employee({ employee_id: nextId++, ...over })

describe('ids', () => {
  const cases: [unknown, string[]][] = [
    [7, []], ['7', []], [' 42 ', []], [2147483647, []], ['2147483647', []],
    [undefined, ['missing:job_id']], [null, ['missing:job_id']], ['', ['missing:job_id']], ['   ', ['missing:job_id']],
    ['x', ['not_integer:job_id']], [1.5, ['not_integer:job_id']], ['1.5', ['not_integer:job_id']], ['1e3', ['not_integer:job_id']],
    [true, ['not_integer:job_id']], [{}, ['not_integer:job_id']], [[1], ['not_integer:job_id']], ['-5', ['not_integer:job_id']],
    [0, ['out_of_range:job_id']], [-1, ['out_of_range:job_id']], [2147483648, ['out_of_range:job_id']],
    ['99999999999999999999', ['out_of_range:job_id']],
  ]
  for (const [value, expected] of cases) {
    test(`job_id ${JSON.stringify(value) ?? 'absent'} -> ${expected.join(',') || 'accepted'}`, async () => {
      const row: Record<string, unknown> = { job_name: `Job ${JSON.stringify(value)}` }
      if (value !== undefined) row.job_id = value
      // Accepted ids repeat across cases ('7' and 7): start each from a clean slate.
      if (expected.length === 0) await db.sql`delete from data.jobs where job_id = ${Number(String(value).trim())}`
      assert.deepEqual(await reasonsFor('jobs', row), expected)
    })
  }
})

describe('names', () => {
  const cases: [unknown, string[]][] = [
    ['Data Engineer', []], ['  Padded  ', []], ['x'.repeat(255), []], ['Zoë Ünïcødé 名前', []],
    [undefined, ['missing:job_name']], [null, ['missing:job_name']], ['', ['missing:job_name']], [' \t ', ['missing:job_name']],
    ['x'.repeat(256), ['too_long:job_name']], ['tab\tinside', ['bad_text:job_name']], ['bell\u0007', ['bad_text:job_name']],
    ['del\u007f', ['bad_text:job_name']], [123, ['bad_text:job_name']], ['y'.repeat(300) + '\u0001', ['too_long:job_name', 'bad_text:job_name']],
  ]
  let id = 500
  for (const [value, expected] of cases) {
    test(`job_name ${JSON.stringify(value)?.slice(0, 30) ?? 'absent'} -> ${expected.join(',') || 'accepted'}`, async () => {
      const row: Record<string, unknown> = { job_id: id++ }
      if (value !== undefined) row.job_name = value
      assert.deepEqual(await reasonsFor('jobs', row), expected)
    })
  }

  test('names are stored trimmed', async () => {
    await ingest('jobs', [{ job_id: 600, job_name: '  Trimmed Name \t' }])
    const [row] = await db.sql`select job_name from jobs where job_id = 600`
    assert.equal(row.job_name, 'Trimmed Name')
  })
})

describe('hiring_date', () => {
  const good = ['2021-07-27T16:02:08Z', '2021-07-27T16:02:08+02:00', '2021-07-27T16:02:08.123456-05:30', '2020-02-29T00:00:00Z', '2000-02-29T23:59:59Z', '2021-07-27t16:02:08z']
  const bad = ['2021-02-30T00:00:00Z', '2027-08-29T00:0:1Z', '2021-07-27', '2021-07-27 16:02:08', '2021-07-27T16:02:08', '2021-07-27T16:02Z',
    '2100-02-29T00:00:00Z', '2021-13-01T00:00:00Z', '2021-00-10T00:00:00Z', '2021-04-31T00:00:00Z', '2021-07-27T24:00:00Z', '2021-07-27T23:60:00Z',
    '2021-07-27T23:59:60Z', '2021-07-27T16:02:08+0200', '2021-07-27T16:02:08+24:00', '2021-07-27T16:02:08-23:60', '2021-06-31T00:00:00Z', '0000-01-01T00:00:00Z', 'yesterday', 20210727]
  for (const value of good) test(`${value} is accepted`, async () => assert.deepEqual(await reasonsFor('employees', fresh({ hiring_date: value })), []))
  for (const value of bad) {
    test(`${value} -> bad_datetime:hiring_date`, async () =>
      assert.deepEqual(await reasonsFor('employees', fresh({ hiring_date: value })), ['bad_datetime:hiring_date']))
  }
  test('missing', async () => {
    assert.deepEqual(await reasonsFor('employees', fresh({ hiring_date: ' ' })), ['missing:hiring_date'])
    assert.deepEqual(await reasonsFor('employees', fresh({ hiring_date: null })), ['missing:hiring_date'])
  })
  test('the offset gives the instant, whatever the session time zone', async () => {
    const id = nextId++
    await db.sql.begin(async (tx) => {
      await tx`set local timezone = 'America/New_York'`
      await tx`call ingest_batch('employees', ${tx.json([employee({ employee_id: id, hiring_date: '2021-12-31T23:30:00-05:00' })])})`
    })
    const [row] = await db.sql`select to_char(hiring_date at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') as utc from employees where employee_id = ${id}`
    assert.equal(row.utc, '2022-01-01T04:30:00')
  })
  test('microseconds survive', async () => {
    const id = nextId++
    await ingest('employees', [employee({ employee_id: id, hiring_date: '2021-07-27T16:02:08.123456Z' })])
    const [row] = await db.sql`select extract(microseconds from hiring_date)::integer as us from employees where employee_id = ${id}`
    assert.equal(row.us, 8123456)
  })
})

describe('references, shape and duplicates', () => {
  test('unknown department and job', async () => {
    assert.deepEqual(await reasonsFor('employees', fresh({ department_id: 99 })), ['unknown_reference:department_id'])
    assert.deepEqual(await reasonsFor('employees', fresh({ job_id: 99, department_id: 98 })), ['unknown_reference:department_id', 'unknown_reference:job_id'])
  })
  test('unknown fields are named', async () => {
    assert.deepEqual(await reasonsFor('jobs', { job_id: 700, job_name: 'X', salary: 1, Job_Name: 'y' }), ['unknown_field:Job_Name', 'unknown_field:salary'])
  })
  test('elements that are not objects', async () => {
    const out = await ingest('jobs', [5, 'x', [701, 'y'], null, true])
    assert.equal(out.rejected, 5)
    for (const r of await rejectsOf(out.batch_id)) assert.deepEqual(r.reasons, ['not_an_object'])
  })
  test('every reason that applies, in field order', async () => {
    assert.deepEqual(await reasonsFor('employees', { employee_id: 'a', hiring_date: '2021-02-30T00:00:00Z', department_id: 0, job_id: 99, extra: 1 }),
      ['unknown_field:extra', 'not_integer:employee_id', 'missing:employee_name', 'bad_datetime:hiring_date', 'out_of_range:department_id', 'unknown_reference:job_id'])
  })
  test('an id twice in one batch: the later one is a duplicate', async () => {
    const out = await ingest('jobs', [{ job_id: 800, job_name: 'A' }, { job_id: 800, job_name: 'A' }, { job_id: '800', job_name: 'B' }])
    assert.deepEqual([out.inserted, out.rejected], [1, 2])
    assert.deepEqual((await rejectsOf(out.batch_id)).map((r) => [r.position, r.reasons]), [[2, ['duplicate_id']], [3, ['duplicate_id']]])
  })
  test('an invalid earlier row does not make a later one a duplicate', async () => {
    const out = await ingest('jobs', [{ job_id: 801, job_name: '' }, { job_id: 801, job_name: 'Valid' }])
    assert.deepEqual([out.inserted, out.rejected], [1, 1])
  })
  test('an existing id: identical is unchanged, different is a duplicate', async () => {
    await ingest('jobs', [{ job_id: 802, job_name: 'Same' }])
    const out = await ingest('jobs', [{ job_id: 802, job_name: '  Same ' }, { job_id: '802', job_name: 'Other' }].slice(0, 1))
    assert.deepEqual([out.inserted, out.unchanged, out.rejected], [0, 1, 0])
    assert.deepEqual(await reasonsFor('jobs', { job_id: 802, job_name: 'Other' }), ['duplicate_id'])
    const [row] = await db.sql`select job_name from jobs where job_id = 802`
    assert.equal(row.job_name, 'Same')
  })
  test('an employee with the same instant in another offset is unchanged', async () => {
    const id = nextId++
    await ingest('employees', [employee({ employee_id: id, hiring_date: '2021-07-27T16:02:08Z' })])
    const out = await ingest('employees', [employee({ employee_id: String(id), hiring_date: '2021-07-27T18:02:08+02:00', department_id: '1' })])
    assert.equal(out.unchanged, 1)
  })
})

describe('batches', () => {
  test('the example from the issue', async () => {
    const out = await ingest('jobs', [{ job_id: 900, job_name: 'Data Engineer' }, { job_id: 'x', job_name: '' }])
    assert.deepEqual([out.received, out.inserted, out.unchanged, out.rejected], [2, 1, 0, 1])
    const [batch] = await db.sql`select * from ingest_batches where batch_id = ${out.batch_id}`
    assert.equal(batch.table_name, 'jobs')
    assert.equal(batch.source, 'sql')
    assert.ok(batch.finished_at >= batch.started_at)
    const rejects = await db.sql`select * from ingest_rejects where batch_id = ${out.batch_id}`
    assert.equal(rejects.length, 1)
    assert.equal(rejects[0].table_name, 'jobs')
    assert.equal(rejects[0].position, '2')
    assert.deepEqual(rejects[0].payload, { job_id: 'x', job_name: '' })
    assert.deepEqual(rejects[0].reasons, ['not_integer:job_id', 'missing:job_name'])
  })

  test('replaying a batch is idempotent', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => ({ job_id: 1000 + i, job_name: `Replay ${i}` }))
    const first = await ingest('jobs', rows)
    const second = await ingest('jobs', rows)
    assert.deepEqual([first.inserted, first.unchanged], [50, 0])
    assert.deepEqual([second.inserted, second.unchanged, second.rejected], [0, 50, 0])
  })

  test('1000 rows are accepted', async () => {
    const rows = Array.from({ length: 1000 }, (_, i) => ({ department_id: 10_000 + i, department_name: `Dept ${i}` }))
    assert.equal((await ingest('departments', rows)).inserted, 1000)
  })

  const refused: [string, string, unknown][] = [
    ['an empty array', 'IBEMP', []],
    ['1001 rows', 'IBBIG', Array.from({ length: 1001 }, (_, i) => ({ job_id: 20_000 + i, job_name: 'x' }))],
    ['an object', 'IBARR', { job_id: 1, job_name: 'x' }],
    ['a string', 'IBARR', 'jobs'],
  ]
  for (const [what, code, rows] of refused) {
    test(`${what} is refused with ${code} and changes nothing`, async () => {
      const before = await db.sql`select (select count(*) from jobs) as jobs, (select count(*) from ingest_batches) as batches`
      await assert.rejects(ingest('jobs', rows), { code })
      const after = await db.sql`select (select count(*) from jobs) as jobs, (select count(*) from ingest_batches) as batches`
      assert.deepEqual(after, before)
    })
  }
  test('an unknown table is refused with IBTAB', async () => {
    await assert.rejects(ingest('salaries', [{ id: 1 }]), { code: 'IBTAB' })
    await assert.rejects(ingest('ingest_batches', [{ id: 1 }]), { code: 'IBTAB' })
  })

  test('an error part-way through leaves nothing behind', async () => {
    // A trigger that fails on one row stands in for any failure after validation.
    await db.sql.unsafe(`
      create function pg_temp.boom() returns trigger language plpgsql as $$
      begin if new.job_name = 'boom' then raise exception 'boom'; end if; return new; end $$;
      create trigger boom before insert on data.jobs for each row execute function pg_temp.boom();`)
    try {
      const before = await db.sql`select (select count(*) from jobs) j, (select count(*) from ingest_batches) b, (select count(*) from ingest_rejects) r`
      await assert.rejects(ingest('jobs', [{ job_id: 3000, job_name: 'fine' }, { job_id: 'bad', job_name: 'x' }, { job_id: 3001, job_name: 'boom' }]))
      const after = await db.sql`select (select count(*) from jobs) j, (select count(*) from ingest_batches) b, (select count(*) from ingest_rejects) r`
      assert.deepEqual(after, before)
    } finally {
      await db.sql`drop trigger boom on data.jobs`
    }
  })

  test('rows sent as strings from CSV-like systems are accepted', async () => {
    const out = await ingest('employees', [{ employee_id: String(nextId++), employee_name: 'Str', hiring_date: '2021-01-01T00:00:00Z', department_id: '2', job_id: '2' }])
    assert.equal(out.inserted, 1)
  })

  test('works exactly like that in psql', (t) => {
    if (!hasPsql) {
      console.warn('SKIPPED: psql is not installed, so the psql check did not run (apt-get install postgresql-client)')
      return t.skip('psql is not installed')
    }
    const output = execFileSync('psql', [db.url, '-X', '-v', 'ON_ERROR_STOP=1', '-c',
      `CALL ingest_batch('jobs', '[{"job_id": 950, "job_name": "Data Engineer"}, {"job_id": "x", "job_name": ""}]')`,
      '-c', 'select reasons from ingest_rejects order by batch_id desc limit 1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    assert.match(output, /\n\s*\d+ \|\s+2 \|\s+1 \|\s+0 \|\s+1\n/)
    assert.match(output, /\{not_integer:job_id,missing:job_name\}/)
  })
})

describe('concurrent batches', () => {
  /** Runs `work` in a transaction on a connection of its own that stays open until `commit()`. */
  function openBatch(work: (tx: typeof db.sql) => Promise<unknown>) {
    const conn = connect(db.url, { max: 1 })
    let commit = () => {}
    const committed = new Promise<void>((resolve) => { commit = resolve })
    let ready = () => {}
    const done = new Promise<void>((resolve) => { ready = resolve })
    const finished = conn.begin(async (tx) => {
      await work(tx as unknown as typeof db.sql)
      ready()
      await committed
    }).finally(() => conn.end())
    return { done, commit: async () => { commit(); await finished } }
  }
  const within = <T>(ms: number, p: Promise<T>) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms))])

  test('batches of one table run side by side', async () => {
    const first = openBatch((tx) => tx`call ingest_batch('jobs', ${tx.json([{ job_id: 9101, job_name: 'First' }])})`)
    await first.done
    try {
      const out = await within(5000, ingest('jobs', [{ job_id: 9102, job_name: 'Second' }]))
      assert.equal(out.inserted, 1)
    } finally {
      await first.commit()
    }
  })

  test('an id another open batch is inserting is judged once that batch commits', async () => {
    const first = openBatch((tx) => tx`call ingest_batch('jobs', ${tx.json([{ job_id: 9201, job_name: 'A' }, { job_id: 9203, job_name: 'Same' }])})`)
    await first.done
    const second = ingest('jobs', [{ job_id: 9201, job_name: 'B' }, { job_id: 9202, job_name: 'New' }, { job_id: 9203, job_name: 'Same' }])
    for (let i = 0; i < 50; i++) { // until the second waits for the first's rows
      const [{ n }] = await db.sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`
      if (n > 0) break
      await new Promise((r) => setTimeout(r, 100))
    }
    await first.commit()
    const out = await second
    assert.deepEqual([out.received, out.inserted, out.unchanged, out.rejected], [3, 1, 1, 1])
    assert.deepEqual((await rejectsOf(out.batch_id)).map((r) => [r.position, r.reasons]), [[1, ['duplicate_id']]])
    const rows = await db.sql`select job_id, job_name from jobs where job_id between 9201 and 9203 order by job_id`
    assert.deepEqual(rows.map((r) => [r.job_id, r.job_name]), [[9201, 'A'], [9202, 'New'], [9203, 'Same']])
  })
})
