// Query parameters, property-tested. On every read route, a parameter is refused as unknown
// (400 bad_parameter:<name>, error.allowed the route's list) exactly when the route's OpenAPI
// document does not list it; and a number is accepted exactly when it is written in digits within
// its bounds. The oracle is the published document, not the schemas the server validates with.
// `npm test` runs it with a fixed seed; `npm run fuzz` longer.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { freshDatabase, listenApi } from '../support.ts'

const db = await freshDatabase()
const { app, base } = await listenApi({ databaseUrl: db.url })
const spec = () => (app.swagger() as unknown as { paths: Record<string, Record<string, unknown>> }).paths
const concrete = (path: string) => path.replace('{table}', 'jobs').replace('{id}', '1').replace('{batch_id}', '1')
async function call(method: string, path: string) {
  const res = await fetch(base + path, { method })
  const text = await res.text()
  let json: any = null
  try {
    json = JSON.parse(text)
  } catch {
    /* not JSON */
  }
  return { status: res.status, text, json }
}

test('on every read route, a query parameter is refused as unknown exactly when the OpenAPI document does not list it', async () => {
  const seed = Number(process.env.FUZZ_SEED ?? 20261201)
  const scale = Number(process.env.FUZZ_SCALE ?? 1)
  const reads = Object.entries(spec())
    .filter(([path, ops]) => ops.get && !['/', '/health'].includes(path))
    .map(([path, ops]) => ({
      path: concrete(path),
      listed: ((ops.get as { parameters?: { in: string; name: string }[] }).parameters ?? [])
        .filter((p) => p.in === 'query')
        .map((p) => p.name),
    }))
  const name = fc.oneof(
    fc.stringMatching(/^[a-z_]{1,12}$/),
    fc.constantFrom('limit', 'after_id', 'year', 'format', 'min_lsn', 'table', 'mean_over', 'limt', 'Limit', '__proto__', 'constructor'),
  )
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...reads), name, async (route, param) => {
      const r = await call('GET', `${route.path}${route.path.includes('?') ? '&' : '?'}${encodeURIComponent(param)}=1`)
      const unknown = r.json?.error?.message?.includes('unknown parameter') ?? false
      assert.equal(unknown, !route.listed.includes(param), `${route.path} ?${param}=1: ${r.status} ${r.text.slice(0, 200)}`)
      if (unknown) assert.deepEqual([r.status, r.json.error.code, r.json.error.allowed], [400, `bad_parameter:${param}`, route.listed])
    }),
    { seed, numRuns: Math.ceil(200 * scale) },
  )
})

test('a number in the query is accepted exactly when it is written in digits and within its bounds', async () => {
  const seed = Number(process.env.FUZZ_SEED ?? 20261201)
  const scale = Number(process.env.FUZZ_SCALE ?? 1)
  const max = (spec()['/tables/{table}/rows'].get as { parameters: { name: string; schema: { maximum: number } }[] }).parameters.find(
    (p) => p.name === 'limit',
  )!.schema.maximum
  const text = fc.oneof(
    fc.stringMatching(/^[0-9]{1,6}$/),
    fc.stringMatching(/^[ +\-0-9.exX]{1,8}$/),
    fc.constantFrom('1e0', '0x1', '1.0', ' 1', '1 ', '+1', '01', '0', String(max), String(max + 1), 'Infinity', '1e200000'),
  )
  await fc.assert(
    fc.asyncProperty(text, async (limit) => {
      const r = await call('GET', `/tables/jobs/rows?limit=${encodeURIComponent(limit)}`)
      const ok = /^[0-9]+$/.test(limit) && Number(limit) >= 1 && Number(limit) <= max
      assert.equal(r.status, ok ? 200 : 400, `?limit=${JSON.stringify(limit)}: ${r.text.slice(0, 200)}`)
      if (!ok) assert.equal(r.json.error.code, 'bad_parameter:limit')
    }),
    { seed, numRuns: Math.ceil(300 * scale) },
  )
})
