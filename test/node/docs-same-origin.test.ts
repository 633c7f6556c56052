// The Swagger UI at /docs is served by the API itself: its "Try it out" on a POST route sends
// the browser's Origin, which is then the server's own. That write must not be refused as a
// cross-origin one (the UI would be read-only); a page of any other origin still is.
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { buildServer } from '../../src/server.ts'
import { freshDatabase } from '../support.ts'

const db = await freshDatabase()
const { app, sql: pool } = await buildServer({
  databaseUrl: db.url,
  logLevel: 'silent',
  backupDir: await mkdtemp(join(tmpdir(), 'hirebase-docs-')),
})
await app.listen({ host: '127.0.0.1', port: 0 })
const port = (app.server.address() as { port: number }).port
after(async () => {
  await app.close()
  await pool.end()
})

function post(host: string, origin: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/tables/jobs/rows', headers: { host, origin, 'content-type': 'application/json' } },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

test("a POST from the server's own origin (the Swagger UI's Try it out) is answered; other origins are still refused", async () => {
  const row = (id: number) => JSON.stringify([{ job_id: id, job_name: 'From /docs' }])
  assert.equal(await post(`127.0.0.1:${port}`, `http://127.0.0.1:${port}`, row(1)), 200)
  assert.equal(await post(`localhost:${port}`, `http://localhost:${port}`, row(2)), 200)
  for (const [host, origin] of [
    [`127.0.0.1:${port}`, `http://localhost:${port}`],
    [`127.0.0.1:${port}`, `https://127.0.0.1:${port}`],
    [`127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`],
    [`127.0.0.1:${port}`, 'null'],
  ]) {
    assert.equal(await post(host, origin, row(3)), 403, `Host ${host}, Origin ${origin}`)
  }
  const [{ n }] = await db.sql`select count(*)::int as n from data.jobs`
  assert.equal(n, 2)
})
