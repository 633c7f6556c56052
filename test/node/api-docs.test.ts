// The API describing itself and its errors, over real HTTP: 405 with Allow, GET /, the Swagger UI
// at /docs (offline, under a CSP, behind the Host check), operationIds and per-route error
// responses in /openapi.json, and error messages that name the allowed values, the limit and the
// JSON position.
// Long, as one file: its tests share one database and two servers (open and token-closed).
import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { peersKnown } from '../../src/api/peer.ts'
import { chromiumOrSkip, freshDatabase, listenApi } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
const backupDir = await mkdtemp(join(tmpdir(), 'hirebase-api-docs-'))

const start = (options: { token?: string; readToken?: string } = {}) => listenApi({ databaseUrl: db.url, backupDir, ...options })

const open = await start()
const closed = await start({ token: 'write-token', readToken: 'read-token' })

async function call(method: string, path: string, body?: string, headers: Record<string, string> = {}, base = open.base) {
  const res = await fetch(base + path, {
    method,
    body,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
  })
  const text = await res.text()
  let json: any = null
  try {
    json = JSON.parse(text)
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, text, json }
}

type Operation = { operationId?: string; responses: Record<string, unknown>; security?: unknown[] }
const spec = async (app = open.app) => (app.swagger() as unknown as { paths: Record<string, Record<string, Operation>> }).paths
const concrete = (path: string) => path.replace('{table}', 'jobs').replace('{id}', '1').replace('{batch_id}', '1')

describe('methods', () => {
  test('a known path asked with another method is 405 with Allow listing the methods it has; nothing is written', async () => {
    const before = await sql`select count(*)::int as n from ingest_batches`
    const paths = await spec()
    assert.ok(Object.keys(paths).length >= 15)
    for (const [path, ops] of Object.entries(paths)) {
      const has = new Set(Object.keys(ops).map((m) => m.toUpperCase()))
      if (has.has('GET')) has.add('HEAD')
      const allow = [...has].sort().join(', ')
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
        if (has.has(method)) continue
        const r = await call(method, concrete(path))
        assert.equal(r.status, 405, `${method} ${path}`)
        assert.equal(r.headers.get('allow'), allow, `${method} ${path}`)
        assert.equal(r.json.error.code, 'method_not_allowed')
        assert.deepEqual(r.json.error.allowed, allow.split(', '))
        assert.match(r.json.error.message, new RegExp(`${method} is not allowed on .*: use ${allow}`))
      }
    }
    assert.deepEqual(await sql`select count(*)::int as n from ingest_batches`, before)
    // An unknown path stays a 404, whatever the method.
    for (const method of ['GET', 'PUT', 'DELETE']) assert.equal((await call(method, '/tables/jobs/nope')).status, 404)
    // The check runs after the guards: a foreign Host is still a 421.
    const { request } = await import('node:http')
    const status = await new Promise<number>((resolve, reject) => {
      const port = new URL(open.base).port
      request({ host: '127.0.0.1', port, method: 'PUT', path: '/tables/jobs/rows', headers: { host: 'evil.example' } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
        .on('error', reject)
        .end()
    })
    assert.equal(status, 421)
  })
})

describe('GET / and /docs', () => {
  test('GET / answers JSON whose links work', async () => {
    const r = await call('GET', '/')
    assert.equal(r.status, 200)
    assert.equal(r.json.links.docs, '/docs')
    assert.equal(r.json.links.openapi, '/openapi.json')
    for (const link of Object.values<string>(r.json.links).filter((l) => !l.includes('{'))) {
      assert.equal((await call('GET', link)).status, 200, link)
    }
  })

  test('/docs serves the Swagger UI from this server only, under a strict CSP; READ_TOKEN leaves it, / and the spec open', async () => {
    for (const base of [open.base, closed.base]) {
      const page = await call('GET', '/docs', undefined, {}, base)
      assert.equal(page.status, 200)
      assert.match(page.headers.get('content-type') ?? '', /text\/html/)
      assert.match(page.text, /swagger-ui-bundle\.js/)
      assert.doesNotMatch(page.text, /(src|href)="(https?:)?\/\//, 'the page loads nothing from elsewhere')
      const csp = page.headers.get('content-security-policy') ?? ''
      assert.match(csp, /default-src 'none'/)
      assert.match(csp, /script-src 'self';/)
      assert.doesNotMatch(csp, /unsafe|https:|\*/)
      const bundle = await call('GET', '/docs/static/swagger-ui-bundle.js', undefined, {}, base)
      assert.equal(bundle.status, 200)
      assert.match(bundle.headers.get('content-type') ?? '', /javascript/)
      assert.equal((await call('GET', '/', undefined, {}, base)).status, 200)
      assert.equal((await call('GET', '/openapi.json', undefined, {}, base)).status, 200)
    }
    // Data stays closed.
    assert.equal((await call('GET', '/stats', undefined, {}, closed.base)).status, 401)
  })

  test('the UI renders every operation in Chromium with no CSP violation and no request elsewhere', { timeout: 120_000 }, async (t) => {
    const browser = await chromiumOrSkip(t, 'the Swagger UI browser check')
    if (!browser) return
    try {
      const page = await browser.newPage()
      const problems: string[] = []
      const foreign: string[] = []
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text())
      })
      page.on('pageerror', (e) => problems.push(String(e)))
      page.on('request', (r) => {
        if (!r.url().startsWith(open.base) && !r.url().startsWith('data:')) foreign.push(r.url())
      })
      await page.goto(`${open.base}/docs`)
      await page.waitForSelector('.opblock', { timeout: 60_000 })
      const operations = Object.values(await spec()).flatMap((ops) => Object.keys(ops)).length
      assert.equal(await page.locator('.opblock').count(), operations)
      assert.deepEqual(problems, [])
      assert.deepEqual(foreign, [])
    } finally {
      await browser.close()
    }
  })
})

describe('/openapi.json', () => {
  test('every route has a unique operationId, and only the error responses it can give', async () => {
    const ids: string[] = []
    for (const [app, token] of [
      [open.app, false],
      [closed.app, true],
    ] as const) {
      for (const [path, ops] of Object.entries(await spec(app))) {
        for (const [method, op] of Object.entries(ops)) {
          const where = `${method} ${path}${token ? ' (tokens)' : ''}`
          assert.match(op.operationId ?? '', /^[a-z][A-Za-z]+$/, where)
          if (!token) ids.push(op.operationId!)
          const statuses = Object.keys(op.responses).map(Number)
          if (method === 'get') {
            for (const s of [409, 413, 415, 422, 429, 507]) assert.ok(!statuses.includes(s), `${where} lists ${s}`)
            // 403: another OS user's call without a token (on Linux), but where nothing is held.
            assert.equal(statuses.includes(403), peersKnown() && !['/', '/health'].includes(path), `${where}: 403`)
          } else {
            for (const s of [400, 403, 413, 415, 503]) assert.ok(statuses.includes(s), `${where} lacks ${s}`)
          }
          // 401 only where a token is asked for: writes with API_TOKEN, reads with READ_TOKEN (not /, /health).
          const asksToken = token && !['/', '/health'].includes(path)
          assert.equal(statuses.includes(401), asksToken, `${where}: 401`)
          assert.equal((op.security ?? []).length > 0, asksToken, `${where}: security`)
        }
      }
    }
    assert.equal(new Set(ids).size, ids.length, ids.join(', '))
    const paths = await spec()
    const statusesOf = (path: string, method: string) => Object.keys(paths[path][method].responses).join(',')
    // A read that takes min_lsn (or X-Hirebase-LSN) can refuse a malformed one: 400, /stats too.
    const forbidden = peersKnown() ? '403,' : ''
    assert.equal(statusesOf('/stats', 'get'), `200,400,${forbidden}503`)
    assert.equal((await call('GET', '/stats?min_lsn=zz')).status, 400)
    assert.equal(statusesOf('/schedule', 'get'), `200,400,${forbidden}503`)
    assert.equal((await call('GET', '/schedule?x=1')).status, 400)
    assert.equal(statusesOf('/health', 'get'), '200,503')
    assert.equal(statusesOf('/reports/hires-by-quarter', 'get'), `200,400,${forbidden}503`)
    assert.equal(statusesOf('/tables/{table}/rows/{id}', 'get'), `200,400,${forbidden}404,503`)
    assert.equal(statusesOf('/tables/{table}/rows', 'post'), '200,400,403,404,409,413,415,503')
    assert.equal(statusesOf('/tables/{table}/restore', 'post'), '200,400,403,404,409,413,415,422,500,503,507')
  })

  test("the bounds in the schemas are the database's (api.data_dictionary)", async () => {
    const [{ d }] = await sql`select api.data_dictionary() as d`
    const paths = await spec()
    const parameter = (path: string, name: string) =>
      (paths[path].get as unknown as { parameters: { name: string; schema: { maximum: number } }[] }).parameters.find(
        (p) => p.name === name,
      )!.schema
    assert.equal(parameter('/tables/{table}/rows', 'limit').maximum, d.batch.max_rows)
    for (const [path, page] of [
      ['/tables/{table}/rows', 'rows'],
      ['/ingest/batches', 'batches'],
      ['/ingest/batches/{batch_id}/rejects', 'rejects'],
    ]) {
      assert.deepEqual(
        [parameter(path, 'limit').maximum, (parameter(path, 'limit') as { default?: number }).default],
        [d.pages[page].max, d.pages[page].default],
        path,
      )
    }
    assert.equal(parameter('/tables/{table}/rows', 'after_id').maximum, d.tables[0].fields[0].range[1])
    assert.equal(parameter('/tables/{table}/rows/{id}', 'id').maximum, d.tables[0].fields[0].range[1])
    const body = (
      paths['/tables/{table}/rows'].post as unknown as { requestBody: { content: Record<string, { schema: { maxItems?: number } }> } }
    ).requestBody
    assert.equal(body.content['application/json'].schema.maxItems, d.batch.max_rows)
    const over = await call('GET', `/tables/jobs/rows?limit=${d.batch.max_rows + 1}`)
    assert.equal(over.status, 400)
    assert.equal(over.json.error.code, 'bad_parameter:limit')
  })
})

describe('error messages', () => {
  test('an enum error names the allowed values', async () => {
    const r = await call('GET', '/reports/hires-by-quarter?format=xml')
    assert.equal(r.status, 400)
    assert.equal(r.json.error.code, 'bad_parameter:format')
    assert.deepEqual(r.json.error.allowed, ['json', 'csv'])
    assert.match(r.json.error.message, /"json", "csv"/)
    const m = await call('GET', '/reports/departments-above-mean?mean_over=some')
    assert.deepEqual(m.json.error.allowed, ['all', 'hiring'])
  })

  test("validation errors read like the others: the parameter, what it must be, what was given (not ajv's 'querystring/year must be integer')", async () => {
    const cases: [string, string, string | undefined, RegExp][] = [
      ['GET', '/reports/hires-by-quarter?year=abc', undefined, /^year must be a whole number from 1 to 9999, e\.g\. 2021; got "abc"$/],
      ['GET', '/reports/hires-by-quarter?year=99999', undefined, /^year must be a whole number from 1 to 9999, e\.g\. 2021; got 99999$/],
      ['GET', '/tables/jobs/rows?limit=0', undefined, /^limit must be a whole number from 1 to \d+; got 0$/],
      ['GET', '/tables/jobs/rows/abc', undefined, /^id must be a whole number from 1 to \d+; got "abc"$/],
      // What Number() reads but is no whole number in digits (ajv coerced them: 0x1 was row 1).
      ['GET', '/tables/jobs/rows/0x1', undefined, /^id must be a whole number written in digits; got "0x1"$/],
      ['GET', '/tables/jobs/rows/1e0', undefined, /^id must be a whole number written in digits; got "1e0"$/],
      ['GET', '/tables/jobs/rows?limit=1.0', undefined, /^limit must be a whole number written in digits; got "1.0"$/],
      ['GET', '/tables/jobs/rows?limit=%201', undefined, /^limit must be a whole number written in digits; got " 1"$/],
      ['GET', '/reports/hires-by-quarter?year=2.021e3', undefined, /^year must be a whole number written in digits; got "2.021e3"$/],
      ['GET', '/ingest/batches/1e0/rejects', undefined, /^batch_id must be a whole number written in digits; got "1e0"$/],
      ['POST', '/tables/jobs/rows?dry_run=maybe', '[]', /^dry_run must be true or false; got "maybe"$/],
      ['POST', '/tables/jobs/restore', '{}', /^the body needs one of "file", "newest" \(exactly one\)$/],
      ['POST', '/tables/jobs/restore', '{"newest": false}', /^newest must be true; got false$/],
      [
        'POST',
        '/tables/jobs/restore',
        '{"file": "x", "newest": true}',
        /^the body must have exactly one of "file", "newest", not several$/,
      ],
    ]
    for (const [method, path, body, message] of cases) {
      const r = await call(method, path, body)
      assert.equal(r.status, 400, path)
      assert.match(r.json.error.code, /^bad_parameter:/, path)
      assert.match(r.json.error.message, message, path)
    }
  })

  test('an unknown query parameter or body field is refused, naming it and what the route takes (?limt=2 was ignored)', async () => {
    const cases: [string, string, string | undefined, string, string[]][] = [
      ['GET', '/tables/jobs/rows?limt=2', undefined, 'limt', ['after_id', 'limit', 'min_lsn']],
      ['GET', '/reports/hires-by-quarter?yaer=2020', undefined, 'yaer', ['year', 'format', 'min_lsn']],
      ['GET', '/stats?x=1', undefined, 'x', ['min_lsn']],
      ['POST', '/tables/jobs/rows?dry=1', '[{"job_id": 1, "job_name": "x"}]', 'dry', ['dry_run']],
      ['POST', '/tables/jobs/restore', '{"newest": true, "extra": 1}', 'extra', ['file', 'newest', 'dry_run']],
    ]
    for (const [method, path, body, name, allowed] of cases) {
      const r = await call(method, path, body)
      assert.equal(r.status, 400, path)
      assert.equal(r.json.error.code, `bad_parameter:${name}`, path)
      assert.deepEqual(r.json.error.allowed, allowed, path)
      assert.match(r.json.error.message, new RegExp(`unknown (parameter|field) "${name}": use ${allowed.join(', ')}$`), path)
    }
    const [{ count }] = await sql`select count(*)::int as count from data.jobs where job_id = 1 and job_name = 'x'`
    assert.equal(count, 0, 'the refused POST wrote nothing')
  })

  test('a route without query parameters lists none in the OpenAPI document (it listed "type" and "additionalProperties"; found by query-params-property)', async () => {
    const paths = await spec()
    for (const [path, method] of [
      ['/tables/{table}/backups', 'get'],
      ['/tables/{table}/backup', 'post'],
    ] as const) {
      const query = ((paths[path][method] as { parameters?: { in: string; name: string }[] }).parameters ?? []).filter(
        (p) => p.in === 'query',
      )
      assert.deepEqual(
        query.map((p) => p.name),
        [],
        `${method} ${path}`,
      )
    }
  })

  test('body_too_large states the limit in bytes', async () => {
    const r = await call('POST', '/tables/jobs/rows', ' '.repeat(2 * 1024 * 1024 + 1))
    assert.equal(r.status, 413)
    assert.equal(r.json.error.code, 'body_too_large')
    assert.equal(r.json.error.limit_bytes, 2 * 1024 * 1024)
    assert.match(r.json.error.message, /2097152 bytes/)
  })

  test("malformed_json gives the position, line and column (rows: the database's refusal, still logged; restore: fastify's)", async () => {
    const body = '[{"job_id": 1, "job_name": "a"},\n {"job_id": 2,}]'
    const r = await call('POST', '/tables/jobs/rows', body)
    assert.equal(r.status, 400)
    assert.equal(r.json.error.code, 'malformed_json')
    assert.equal(typeof r.json.batch_id, 'number')
    assert.deepEqual([r.json.error.position, r.json.error.line, r.json.error.column], [body.indexOf('}]'), 2, 15])
    assert.match(r.json.error.message, /position 47: line 2, column 15/)
    const [logged] = await sql`select error_code from ingest_batches where batch_id = ${r.json.batch_id}`
    assert.equal(logged.error_code, 'malformed_json')
    // A CSV refusal has no JSON position.
    const csv = await call('POST', '/tables/jobs/rows', '1,"a\n', { 'content-type': 'text/csv' })
    assert.equal(csv.json.error.code, 'malformed_csv')
    assert.equal(csv.json.error.position, undefined)
    const restore = await call('POST', '/tables/jobs/restore', '{"newest": tru}')
    assert.equal(restore.status, 400)
    assert.equal(restore.json.error.code, 'malformed_json')
    assert.equal(restore.json.error.position, 11)
  })

  test('415 lists the accepted content types', async () => {
    const r = await call('POST', '/tables/jobs/rows', 'x', { 'content-type': 'text/plain' })
    assert.equal(r.status, 415)
    assert.deepEqual(r.json.error.accepted, ['application/json', 'text/csv'])
    assert.match(r.json.error.message, /application\/json and text\/csv/)
  })
})
