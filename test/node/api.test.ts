// The REST API over real HTTP on a random loopback port, against a real database.
// Long, as one file: the routes' tests share one database and one server, and build on its rows.
import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { before, describe, test } from 'node:test'
import { checkListenAddress } from '../../src/server.ts'
import { connect } from '../../src/database.ts'
import { errorBody, toApiError } from '../../src/errors.ts'
import { freshDatabase, listenApi } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
const backupDir = await mkdtemp(join(tmpdir(), 'hirebase-api-backups-'))

const startApi = (token?: string) => listenApi({ databaseUrl: db.url, token, backupDir })

const api = await startApi()

interface Answer {
  status: number
  body: any
  headers: Headers
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, base = api.base): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    ;(init.headers as Record<string, string>)['content-type'] ??= 'application/json'
  }
  const res = await fetch(base + path, init)
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers }
}

const post = (path: string, body: unknown, headers?: Record<string, string>) => call('POST', path, body, headers)
const counts = async () =>
  (
    await sql`select (select count(*) from jobs)::int as jobs, (select count(*) from employees)::int as employees,
  (select count(*) from ingest_batches)::int as batches, (select count(*) from ingest_batches where error_code is null)::int as ingested`
  )[0]

before(async () => {
  await post('/tables/departments/rows', [{ department_id: 1, department_name: 'Engineering' }])
  await post('/tables/jobs/rows', [{ job_id: 1, job_name: 'Engineer' }])
})

describe('POST /tables/{table}/rows', () => {
  test("inserts, then answers unchanged for the same row (the issue's example)", async () => {
    const first = await post('/tables/jobs/rows', [{ job_id: 901, job_name: 'Analytics Engineer' }])
    assert.equal(first.status, 200)
    assert.deepEqual(
      { ...first.body, batch_id: 0 },
      { batch_id: 0, table: 'jobs', received: 1, inserted: 1, unchanged: 0, rejected: 0, rejects: [] },
    )
    const again = await post('/tables/jobs/rows', [{ job_id: 901, job_name: 'Analytics Engineer' }])
    assert.equal(again.body.unchanged, 1)
  })

  test('rejects come back with position, row and reasons', async () => {
    const res = await post('/tables/employees/rows', [
      { employee_id: 1, employee_name: 'Ada', hiring_date: '2021-07-27T16:02:08Z', department_id: 1, job_id: 1 },
      { employee_id: 2, employee_name: '', hiring_date: '2021-07-27', department_id: 99, job_id: 1 },
    ])
    assert.equal(res.status, 200)
    assert.deepEqual([res.body.inserted, res.body.rejected], [1, 1])
    assert.deepEqual(res.body.rejects, [
      {
        position: 2,
        row: { employee_id: 2, employee_name: '', hiring_date: '2021-07-27', department_id: 99, job_id: 1 },
        reasons: ['missing:employee_name', 'bad_datetime:hiring_date', 'unknown_reference:department_id'],
      },
    ])
  })

  test('1000 rows are accepted; 1001 are refused, inserting nothing, and the refusal is logged', async () => {
    const rows = (n: number, from: number) => Array.from({ length: n }, (_, i) => ({ job_id: from + i, job_name: `Job ${from + i}` }))
    assert.equal((await post('/tables/jobs/rows', rows(1000, 10_000))).body.inserted, 1000)
    const before = await counts()
    const res = await post('/tables/jobs/rows', rows(1001, 20_000))
    assert.equal(res.status, 400)
    assert.equal(res.body.error.code, 'batch_too_large')
    assert.match(res.body.error.message, /1001 rows: the limit is 1000/)
    const after = await counts()
    assert.equal(after.jobs, before.jobs)
    assert.equal(after.batches, before.batches + 1)
    const [logged] = await sql`select * from ingest_batches where batch_id = ${res.body.batch_id}`
    assert.deepEqual([logged.source, logged.error_code, logged.received, logged.inserted], ['api', 'batch_too_large', 1001, 0])
  })

  const refused: [string, string | undefined, string, string][] = [
    ['an empty array', '[]', 'application/json', 'empty_batch'],
    ['an object', '{"job_id": 1}', 'application/json', 'not_an_array'],
    ['malformed JSON', '[{"job_id": 1', 'application/json', 'malformed_json'],
    ['an empty JSON body', '', 'application/json', 'malformed_json'],
    ['malformed CSV', '1,ok\n2,"unclosed\n', 'text/csv', 'malformed_csv'],
  ]
  for (const [what, body, type, code] of refused) {
    test(`${what} -> 400 ${code}, logged`, async () => {
      const before = await counts()
      const res = await call('POST', '/tables/jobs/rows', body, { 'content-type': type })
      assert.equal(res.status, 400)
      assert.equal(res.body.error.code, code)
      assert.ok(res.body.error.message.length > 10)
      const after = await counts()
      assert.deepEqual([after.jobs, after.batches], [before.jobs, before.batches + 1])
    })
  }

  test('an unknown table is 404, another media type 415, a huge body 413', async () => {
    assert.equal((await post('/tables/salaries/rows', [{ id: 1 }])).status, 404)
    assert.equal((await post('/tables/salaries/rows', [{ id: 1 }])).body.error.code, 'unknown_table')
    assert.equal((await call('POST', '/tables/jobs/rows', '<a/>', { 'content-type': 'application/xml' })).status, 415)
    const huge = JSON.stringify([{ job_id: 1, job_name: 'x'.repeat(3 * 1024 * 1024) }])
    const res = await call('POST', '/tables/jobs/rows', huge)
    assert.equal(res.status, 413)
    assert.equal(res.body.error.code, 'body_too_large')
  })

  test('text/csv bodies use the same rules; positions are record numbers', async () => {
    const res = await call('POST', '/tables/jobs/rows', '\uFEFF930,"CSV, Job"\r\n931,\r\n932,a,b\r\n', { 'content-type': 'text/csv' })
    assert.equal(res.status, 200)
    assert.deepEqual([res.body.inserted, res.body.rejected], [1, 2])
    assert.deepEqual(
      res.body.rejects.map((r: any) => [r.position, r.row, r.reasons]),
      [
        [2, ['931', ''], ['missing:job_name']],
        [3, ['932', 'a', 'b'], ['wrong_field_count']],
      ],
    )
    assert.equal((await call('GET', '/tables/jobs/rows/930')).body.job_name, 'CSV, Job')
  })

  test('dry_run=true gives the full verdict and writes nothing', async () => {
    const before = await counts()
    const res = await post('/tables/jobs/rows?dry_run=true', [
      { job_id: 940, job_name: 'Dry' },
      { job_id: 940, job_name: 'Dup' },
      { job_id: 'x', job_name: 'y' },
    ])
    assert.equal(res.status, 200)
    assert.deepEqual([res.body.dry_run, res.body.batch_id, res.body.inserted, res.body.rejected], [true, null, 1, 2])
    assert.deepEqual(
      res.body.rejects.map((r: any) => r.reasons),
      [['duplicate_id'], ['not_integer:job_id']],
    )
    assert.deepEqual(await counts(), before)
    assert.equal((await call('GET', '/tables/jobs/rows/940')).status, 404)
  })

  test('Idempotency-Key: a retry gets the first answer and writes nothing; another body with the key is 409', async () => {
    const key = { 'idempotency-key': `key-${Date.now()}` }
    const first = await post('/tables/jobs/rows', [{ job_id: 950, job_name: 'Once' }], key)
    const before = await counts()
    const retry = await post('/tables/jobs/rows', [{ job_id: 950, job_name: 'Once' }], key)
    assert.deepEqual({ ...retry.body, replayed: undefined }, { ...first.body, replayed: undefined })
    assert.equal(retry.body.replayed, true)
    assert.deepEqual(await counts(), before)
    const other = await post('/tables/jobs/rows', [{ job_id: 951, job_name: 'Other' }], key)
    assert.equal(other.status, 409)
    assert.equal(other.body.error.code, 'idempotency_key_reused')
  })

  test('every response carries a request id', async () => {
    const res = await call('GET', '/health', undefined, { 'x-request-id': 'trace-me' })
    assert.equal(res.headers.get('x-request-id'), 'trace-me')
    assert.match((await call('GET', '/health')).headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/)
  })
})

describe('look-ups', () => {
  test('GET one row; hiring_date in UTC with Z; 404 and 400', async () => {
    await post('/tables/employees/rows', [
      { employee_id: 60, employee_name: 'Offset', hiring_date: '2021-12-31T23:30:00-05:00', department_id: 1, job_id: 1 },
    ])
    const res = await call('GET', '/tables/employees/rows/60')
    assert.deepEqual(res.body, {
      employee_id: 60,
      employee_name: 'Offset',
      hiring_date: '2022-01-01T04:30:00Z',
      department_id: 1,
      job_id: 1,
    })
    assert.equal((await call('GET', '/tables/employees/rows/61')).status, 404)
    assert.equal((await call('GET', '/tables/employees/rows/abc')).status, 400)
    assert.equal((await call('GET', '/tables/nope/rows/1')).status, 404)
  })

  test('keyset paging walks every row once', async () => {
    await post(
      '/tables/departments/rows',
      Array.from({ length: 25 }, (_, i) => ({ department_id: 100 + i, department_name: `D${i}` })),
    )
    const seen: number[] = []
    let after = 0
    for (let page = 0; page < 10 && after !== null; page++) {
      const res = await call('GET', `/tables/departments/rows?after_id=${after}&limit=10`)
      seen.push(...res.body.rows.map((r: any) => r.department_id))
      after = res.body.next_after_id
    }
    const [{ n }] = await sql`select count(*)::int as n from departments`
    assert.equal(seen.length, n)
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => a - b),
    )
    assert.equal((await call('GET', '/tables/departments/rows?limit=1001')).status, 400)
  })

  test("the ingest log: batches by table, and a batch's rejects", async () => {
    const res = await post('/tables/jobs/rows', [{ job_id: 'bad', job_name: 'x' }])
    const batches = await call('GET', '/ingest/batches?table=jobs&limit=5')
    assert.equal(batches.status, 200)
    assert.ok(batches.body.length <= 5 && batches.body.every((b: any) => b.table_name === 'jobs'))
    assert.equal(batches.body[0].batch_id, res.body.batch_id)
    const rejects = await call('GET', `/ingest/batches/${res.body.batch_id}/rejects`)
    assert.deepEqual(
      rejects.body.rejects.map((r: any) => [r.position, r.reasons]),
      [[1, ['not_integer:job_id']]],
    )
    assert.equal((await call('GET', '/ingest/batches/999999/rejects')).status, 404)
    assert.equal((await call('GET', '/ingest/batches?table=nope')).status, 404)
  })

  test('GET /data-dictionary is read from the database', async () => {
    const { body } = await call('GET', '/data-dictionary')
    assert.deepEqual(body.batch, { min_rows: 1, max_rows: 1000 })
    const employees = body.tables.find((t: any) => t.table === 'employees')
    assert.deepEqual(
      employees.fields.map((f: any) => [f.field, f.type]),
      [
        ['employee_id', 'integer'],
        ['employee_name', 'text'],
        ['hiring_date', 'timestamp with time zone'],
        ['department_id', 'integer'],
        ['job_id', 'integer'],
      ],
    )
    assert.ok(body.reason_codes.some((r: any) => r.code === 'duplicate_id'))
  })

  test('GET /stats counts rows and reasons', async () => {
    const { body } = await call('GET', '/stats')
    const jobs = body.tables.find((t: any) => t.table === 'jobs')
    assert.equal(
      jobs.received,
      jobs.inserted +
        jobs.unchanged +
        jobs.rejected +
        (await sql`select coalesce(sum(received), 0)::int as n from ingest_batches where error_code is not null and table_name = 'jobs'`)[0]
          .n,
    )
    assert.ok(body.reasons.some((r: any) => r.code === 'not_integer:job_id' && r.rejects >= 1))
  })

  test('GET /health and /openapi.json', async () => {
    const health = (await call('GET', '/health')).body
    assert.deepEqual([health.status, health.database, health.lock_waits, health.slow], ['ok', 'ok', 0, []])
    const { body } = await call('GET', '/openapi.json')
    assert.equal(body.openapi, '3.0.3')
    for (const path of [
      '/tables/{table}/rows',
      '/tables/{table}/rows/{id}',
      '/ingest/batches',
      '/ingest/batches/{batch_id}/rejects',
      '/ingest/rejects/replay',
      '/data-dictionary',
      '/stats',
      '/health',
    ])
      assert.ok(body.paths[path], path)
    assert.ok(body.paths['/tables/{table}/rows'].post.requestBody.content['text/csv'])
  })
})

describe('replaying rejects', () => {
  test('rows rejected for a missing department go in once it arrives; the rest keep their reasons', async () => {
    const res = await post('/tables/employees/rows', [
      { employee_id: 70, employee_name: 'Waiting', hiring_date: '2021-03-01T00:00:00Z', department_id: 7, job_id: 1 },
      { employee_id: 71, employee_name: 'Hopeless', hiring_date: 'never', department_id: 7, job_id: 1 },
    ])
    assert.equal(res.body.rejected, 2)
    await post('/tables/departments/rows', [{ department_id: 7, department_name: 'Late' }])
    const replay = await post('/ingest/rejects/replay?table=employees', undefined)
    assert.equal(replay.status, 200)
    assert.ok(replay.body.inserted >= 1)
    assert.equal((await call('GET', '/tables/employees/rows/70')).status, 200)
    const rejects = await call('GET', `/ingest/batches/${res.body.batch_id}/rejects`)
    const [waiting, hopeless] = rejects.body.rejects
    assert.ok(waiting.replayed_at && waiting.replay_batch_id === replay.body.batch_id)
    assert.deepEqual([hopeless.replayed_at, hopeless.reasons], [null, ['bad_datetime:hiring_date']])
    // Nothing is replayed twice.
    const again = await post('/ingest/rejects/replay?table=employees', undefined)
    assert.equal(again.body.inserted, 0)
  })

  test('CALL replay_rejects in SQL, including rejects from CSV loads', async () => {
    await sql.begin(async (tx) => {
      await tx`select api.open_ingest_input()`
      await tx`insert into pg_temp.ingest_input (position, fields) values (1, '{72,"From CSV",2021-04-01T00:00:00Z,8,1}')`
      await tx`select api.ingest_staged('employees', 'csv', true)`
    })
    await post('/tables/departments/rows', [{ department_id: 8, department_name: 'Later' }])
    const [out] = await sql`call replay_rejects('employees')`
    assert.ok(out.inserted >= 1)
    assert.equal((await call('GET', '/tables/employees/rows/72')).body.employee_name, 'From CSV')
  })
})

describe('security', () => {
  test('with API_TOKEN, writes need the bearer token; reads stay open', async () => {
    const secured = await startApi('s3cret-token')
    try {
      const rows = [{ job_id: 960, job_name: 'Secure' }]
      assert.equal((await call('POST', '/tables/jobs/rows', rows, {}, secured.base)).status, 401)
      assert.equal((await call('POST', '/tables/jobs/rows', rows, { authorization: 'Bearer wrong' }, secured.base)).status, 401)
      assert.equal((await call('POST', '/ingest/rejects/replay?table=jobs', undefined, {}, secured.base)).status, 401)
      assert.equal((await call('POST', '/tables/jobs/rows', rows, { authorization: 'Bearer s3cret-token' }, secured.base)).status, 200)
      assert.equal((await call('GET', '/tables/jobs/rows/960', undefined, {}, secured.base)).status, 200)
    } finally {
      await secured.close()
    }
  })

  test('refuses to listen beyond loopback without a token', () => {
    assert.throws(() => checkListenAddress('0.0.0.0', undefined), /refusing to listen on 0\.0\.0\.0 without API_TOKEN/)
    assert.doesNotThrow(() => checkListenAddress('0.0.0.0', 'token'))
    assert.doesNotThrow(() => checkListenAddress('127.0.0.1', undefined))
    assert.doesNotThrow(() => checkListenAddress('::1', undefined))
  })

  test("the API's database role can call the procedures and read, and nothing else", async () => {
    const role = connect(db.url, { max: 1, connection: { role: db.roles.api } })
    try {
      assert.equal((await role`select current_user as u`)[0].u, db.roles.api)
      await role`select count(*) from employees`
      await role`call ingest_batch('jobs', '[{"job_id": 970, "job_name": "Via role"}]')`
      for (const statement of [
        `insert into data.jobs values (971, 'direct')`,
        `update data.jobs set job_name = 'x' where job_id = 970`,
        `delete from data.jobs where job_id = 970`,
        `truncate data.jobs cascade`,
        `insert into data.ingest_batches (table_name, source) values ('jobs', 'sql')`,
        `select internal.ingest_statement('jobs', false)`,
        `create table public.sneaky (id int)`,
      ]) {
        await assert.rejects(role.unsafe(statement), { code: '42501' }, statement)
      }
    } finally {
      await role.end()
    }
  })
})

describe('concurrency', () => {
  test('8 clients sending overlapping batches: no duplicates, no errors, every row accounted for', async () => {
    const batches = Array.from({ length: 16 }, (_, b) =>
      Array.from({ length: 200 }, (_, i) => ({ job_id: 30_000 + ((b * 50 + i) % 600), job_name: `Concurrent ${(b * 50 + i) % 600}` })),
    )
    const results: any[] = []
    await Promise.all(
      Array.from({ length: 8 }, async (_, client) => {
        for (let b = client; b < batches.length; b += 8) results.push(await post('/tables/jobs/rows', batches[b]))
      }),
    )
    assert.ok(
      results.every((r) => r.status === 200),
      JSON.stringify(results.find((r) => r.status !== 200)?.body),
    )
    for (const r of results) assert.equal(r.body.inserted + r.body.unchanged + r.body.rejected, r.body.received)
    const inserted = results.reduce((n, r) => n + r.body.inserted, 0)
    const [{ n }] = await sql`select count(*)::int as n from jobs where job_id between 30000 and 30599`
    assert.equal(inserted, n)
    assert.equal(n, 600)
    assert.equal(
      results.reduce((n, r) => n + r.body.rejected, 0),
      0,
    )
  })
})

test('a database error with a DETAIL string: the body is code and message, not one field per character', async () => {
  // Found by test/node/multi-instance.test.ts with the idempotency lock taken out: the 409 body
  // read {"0":"K","1":"e",...}.
  const insert = () => sql`insert into data.idempotency_keys (idempotency_key, request_hash, response) values ('detail-example', 'h', '{}')`
  await insert()
  const err = await insert().then(
    () => assert.fail('a second insert of the key must fail'),
    (e: unknown) => e,
  )
  assert.match(String((err as { detail?: unknown }).detail), /already exists/)
  assert.deepEqual(Object.keys(errorBody(toApiError(err)).error).sort(), ['code', 'message'])
  assert.equal(toApiError(err).status, 409)
})
