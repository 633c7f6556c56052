// A hostile web page on the same machine, over real HTTP: DNS rebinding (a foreign Host),
// cross-origin writes, text/plain bodies, a bodiless restore; formula cells in CSV; the token
// in logs; reads closed by READ_TOKEN. Every refusal writes nothing.
// Long, as one file: its attacks share one database and its servers.
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { hostAllowed, tokenFromEnv } from '../../src/server.ts'
import { writeReports } from '../../src/report/write.ts'
import { freshDatabase, listenApi, startServeScript } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
const backupDir = await mkdtemp(join(tmpdir(), 'hirebase-http-'))

const start = (options: { token?: string; readToken?: string; allowedHosts?: string[]; allowedOrigins?: string[] } = {}) =>
  listenApi({ databaseUrl: db.url, backupDir, ...options })

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** A raw HTTP request (fetch may not set Host). */
function raw(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...headers } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        text += d
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

const counts = async () =>
  (
    await sql`
  select (select count(*)::int from data.jobs) as jobs, (select count(*)::int from data.ingest_batches) as batches,
         (select count(*)::int from data.backup_requests) as requests`
  )[0]
const backupFiles = async () => (await readdir(backupDir, { recursive: true })).filter((n) => String(n).endsWith('.avro')).length

const open = await start()
const json = { 'content-type': 'application/json' }
const row = JSON.stringify([{ job_id: 4242, job_name: 'From a page' }])

describe('Host (DNS rebinding)', () => {
  test('a foreign Host is refused before anything runs; the listening address and loopback names are answered', async () => {
    const before = await counts()
    for (const host of [
      'evil.example',
      `evil.example:${open.port}`,
      `127.0.0.1:${open.port + 1}`,
      'localhost.evil.example',
      `127.0.0.2:${open.port}`,
    ]) {
      const r = await raw(open.port, 'POST', '/tables/jobs/rows', { ...json, host }, row)
      assert.equal(r.status, 421, `Host ${host}`)
      assert.equal(JSON.parse(r.body).error.code, 'unknown_host')
      assert.equal((await raw(open.port, 'GET', '/tables/jobs/rows', { host })).status, 421)
    }
    assert.deepEqual(await counts(), before)
    for (const host of [`127.0.0.1:${open.port}`, `localhost:${open.port}`, `[::1]:${open.port}`, `LOCALHOST:${open.port}`]) {
      assert.equal((await raw(open.port, 'GET', '/health', { host })).status, 200, host)
    }
  })

  test('ALLOWED_HOSTS adds names; the rule for each listening address', async () => {
    const named = await start({ allowedHosts: ['api.example.org'] })
    assert.equal((await raw(named.port, 'GET', '/health', { host: 'api.example.org' })).status, 200)
    assert.equal((await raw(named.port, 'GET', '/health', { host: 'other.example.org' })).status, 421)
    assert.ok(hostAllowed('10.1.2.3:8000', '0.0.0.0', 8000, []))
    assert.ok(!hostAllowed('rebound.example:8000', '0.0.0.0', 8000, []))
    assert.ok(hostAllowed('192.168.1.5:8000', '192.168.1.5', 8000, []))
    assert.ok(!hostAllowed('localhost:8000', '192.168.1.5', 8000, []))
  })
})

describe('Origin and bodies', () => {
  const postRoutes = async () => {
    const doc = open.app.swagger() as { paths: Record<string, Record<string, unknown>> }
    return Object.entries(doc.paths)
      .filter(([, ops]) => 'post' in ops)
      .map(([path]) => path.replace('{table}', 'jobs'))
  }

  test('a cross-origin POST to every POST route is refused with 403, and writes nothing', async () => {
    await sql`call ingest_batch('jobs', '[{"job_id": "x", "job_name": "reject to replay"}]')`
    const routes = await postRoutes()
    assert.ok(routes.length >= 4, routes.join(', '))
    const before = await counts()
    const files = await backupFiles()
    for (const path of routes) {
      const url = path.includes('replay') ? `${path}?table=jobs` : path
      for (const origin of ['https://evil.example', 'null', `http://localhost:${open.port + 1}`]) {
        const body = path.endsWith('/rows') ? row : JSON.stringify({ newest: true })
        const r = await raw(open.port, 'POST', url, { ...json, origin }, body)
        assert.equal(r.status, 403, `${url} from ${origin}`)
        assert.equal(JSON.parse(r.body).error.code, 'forbidden_origin')
        assert.equal(r.headers['access-control-allow-origin'], undefined)
      }
    }
    assert.deepEqual(await counts(), before)
    assert.equal(await backupFiles(), files)
  })

  test('ALLOWED_ORIGINS: those pages may write and get CORS headers; others get none, reads included', async () => {
    const allowed = await start({ allowedOrigins: ['https://app.example'] })
    const ok = await raw(
      allowed.port,
      'POST',
      '/tables/jobs/rows',
      { ...json, origin: 'https://app.example' },
      JSON.stringify([{ job_id: 4243, job_name: 'Allowed page' }]),
    )
    assert.equal(ok.status, 200)
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example')
    const read = await raw(allowed.port, 'GET', '/tables/jobs/rows', { origin: 'https://evil.example' })
    assert.equal(read.status, 200)
    assert.equal(read.headers['access-control-allow-origin'], undefined)
    const preflight = await raw(allowed.port, 'OPTIONS', '/tables/jobs/rows', {
      origin: 'https://evil.example',
      'access-control-request-method': 'POST',
    })
    assert.equal(preflight.headers['access-control-allow-origin'], undefined)
  })

  test('text/plain and form bodies are 415 naming the accepted types, and write nothing', async () => {
    const before = await counts()
    for (const type of [
      'text/plain',
      'text/plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      for (const path of ['/tables/jobs/rows', '/tables/jobs/restore']) {
        const r = await raw(open.port, 'POST', path, { 'content-type': type }, path.endsWith('rows') ? row : '{"newest": true}')
        assert.equal(r.status, 415, `${type} to ${path}`)
        const error = JSON.parse(r.body).error
        assert.equal(error.code, 'unsupported_media_type')
        assert.match(error.message, /application\/json and text\/csv/)
      }
    }
    assert.deepEqual(await counts(), before)
  })

  test('a restore without a body, or naming neither a file nor newest, is refused and restores nothing', async () => {
    assert.equal((await raw(open.port, 'POST', '/tables/jobs/backup')).status, 201)
    await sql`insert into data.jobs values (4244, 'Added after the backup')`
    const before = await counts()
    for (const body of [undefined, '{}', '{"newest": false}', '{"dry_run": true}', 'null']) {
      const r = await raw(open.port, 'POST', '/tables/jobs/restore', body === undefined ? {} : json, body)
      assert.equal(r.status, 400, String(body))
    }
    assert.deepEqual(await counts(), before)
    const dry = await raw(open.port, 'POST', '/tables/jobs/restore', json, '{"newest": true, "dry_run": true}')
    assert.equal(dry.status, 200, dry.body)
    assert.equal(JSON.parse(dry.body).removed, 1)
    assert.deepEqual(await counts(), before)
  })
})

describe('tokens', () => {
  test('a blank API_TOKEN or READ_TOKEN is refused at start-up', () => {
    for (const value of [' ', '\t', '  \n']) {
      assert.throws(() => tokenFromEnv('API_TOKEN', { API_TOKEN: value }), /API_TOKEN is blank/)
      assert.throws(() => tokenFromEnv('READ_TOKEN', { READ_TOKEN: value }), /READ_TOKEN is blank/)
    }
    assert.equal(tokenFromEnv('API_TOKEN', {}), undefined)
    assert.equal(tokenFromEnv('API_TOKEN', { API_TOKEN: 's3cret' }), 's3cret')
  })

  test('READ_TOKEN closes reads (the write token opens them too); without it reads are open', async () => {
    const closed = await start({ token: 'write-token', readToken: 'read-token' })
    for (const path of [
      '/tables/jobs/rows',
      '/tables/jobs/rows/1',
      '/ingest/batches',
      '/stats',
      '/schedule',
      '/data-dictionary',
      '/reports/hires-by-quarter',
      '/tables/jobs/backups',
    ]) {
      assert.equal((await raw(closed.port, 'GET', path)).status, 401, path)
      assert.equal((await raw(closed.port, 'GET', `${path}?access_token=read-token`)).status, 401, path)
      assert.notEqual((await raw(closed.port, 'GET', path, { authorization: 'Bearer read-token' })).status, 401, path)
      assert.notEqual((await raw(closed.port, 'GET', path, { authorization: 'Bearer write-token' })).status, 401, path)
      assert.notEqual((await raw(open.port, 'GET', path)).status, 401, path)
    }
    assert.equal((await raw(closed.port, 'GET', '/health')).status, 200)
    // The read token does not open writes.
    assert.equal((await raw(closed.port, 'POST', '/tables/jobs/rows', { ...json, authorization: 'Bearer read-token' }, row)).status, 401)
  })

  test('the token appears in no log line', { timeout: 60_000 }, async () => {
    const token = 'tok-' + 'Zq9'.repeat(8)
    const serve = await startServeScript({
      DATABASE_URL: db.url,
      LOG_LEVEL: 'debug',
      API_TOKEN: token,
      READ_TOKEN: '',
      BACKUP_DIR: backupDir,
    })
    const { port } = serve
    try {
      await raw(port, 'GET', `/nope?access_token=${token}`)
      await raw(port, 'GET', `/tables/jobs/rows?token=${token}&limit=abc`)
      await raw(port, 'POST', `/tables/jobs/rows?api_token=${token}`, { ...json, authorization: `Bearer ${token}` }, row)
      await raw(port, 'POST', `/tables/jobs/rows?api_token=${token}`, { ...json, authorization: `Bearer ${token}x` }, row)
      await raw(port, 'GET', `/tables/nope/rows/1?t=${token}`, { host: `evil.example?${token}` })
      await new Promise((r) => setTimeout(r, 300))
    } finally {
      await serve.stop()
    }
    const output = serve.output()
    assert.match(output, /"route":"\/nope\?\[redacted\]"/)
    assert.ok(
      !output.includes(token),
      output
        .split('\n')
        .filter((l) => l.includes(token))
        .join('\n'),
    )
  })
})

describe('formula cells in CSV', () => {
  test('report CSVs and ?format=csv neutralise =, +, -, @, tab and CR; JSON keeps the raw value', async () => {
    const names = ['=HYPERLINK("http://evil.example","x")', '+SUM(1)', '-2+3', '@cmd', '\tTabbed', '\rReturn']
    for (const [i, name] of names.entries()) {
      await sql`insert into data.departments values (${9000 + i}, ${name})`
      await sql`insert into data.jobs values (${9000 + i}, ${name})`
      await sql`insert into data.employees values (${9000 + i}, 'E', '2021-02-01T00:00:00Z', ${9000 + i}, ${9000 + i})`
    }
    const neutral = (text: string) => {
      for (const name of names) {
        const quotedOrNot = [`'${name}`, `"'${name.replaceAll('"', '""')}"`]
        assert.ok(
          quotedOrNot.some((n) => text.includes(n)),
          `${JSON.stringify(name)} not neutralised in\n${text}`,
        )
        for (const line of text.split('\r\n'))
          for (const cell of line.split(',')) assert.ok(!/^"?[=+\-@\t\r]/.test(cell), JSON.stringify(line))
      }
    }
    neutral((await raw(open.port, 'GET', '/reports/hires-by-quarter?format=csv')).body)
    neutral((await raw(open.port, 'GET', '/reports/hires-by-quarter', { accept: 'text/csv' })).body)
    const asJson = JSON.parse((await raw(open.port, 'GET', '/reports/hires-by-quarter')).body)
    for (const name of names)
      assert.ok(
        asJson.some((r: { department: string }) => r.department === name),
        name,
      )
    const out = await mkdtemp(join(tmpdir(), 'hirebase-csv-'))
    const written = await writeReports(sql, { years: [2021], out, database: 'test' })
    const csvs = written.files.filter((f) => f.endsWith('.csv'))
    assert.ok(csvs.length >= 2)
    neutral(
      await readFile(
        csvs.find((f) => f.includes('quarter'))!,
        'utf8',
      ),
    )
    const aboveMean = await readFile(
      csvs.find((f) => !f.includes('quarter'))!,
      'utf8',
    )
    for (const line of aboveMean.split('\r\n')) for (const cell of line.split(',')) assert.ok(!/^"?[=+\-@\t\r]/.test(cell), line)
  })
})
