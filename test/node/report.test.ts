// The report API (JSON and CSV) and the static HTML reports.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { JSDOM } from 'jsdom'
import { loadDirectory } from '../../src/load.ts'
import { describeDatabase, writeReports } from '../../src/report.ts'
import { buildServer } from '../../src/server.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { freshDatabase } from '../support.ts'

const db = await freshDatabase()
await loadDirectory(db.sql, SAMPLE_DIR)
const { app, sql: pool } = await buildServer({ databaseUrl: db.url, logLevel: 'silent', backupDir: await mkdtemp(join(tmpdir(), 'hb-')) })
await app.listen({ host: '127.0.0.1', port: 0 })
after(async () => { await app.close(); await pool.end() })
const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

describe('report API', () => {
  test('departments above the mean: JSON by default, the mean in headers', async () => {
    const res = await fetch(`${base}/reports/departments-above-mean?year=2021`)
    assert.equal(res.status, 200)
    assert.deepEqual((await res.json()).map((r: any) => [r.department, r.hired]), [['Support', 216], ['Engineering', 205],
      ['Human Resources', 201], ['Services', 200], ['Business Development', 185], ['Research and Development', 148], ['Marketing', 142]])
    assert.equal(res.headers.get('x-mean-over'), 'all')
    assert.equal(Number(res.headers.get('x-mean')).toFixed(1), '136.9')
    const hiring = await fetch(`${base}/reports/departments-above-mean?mean_over=hiring`)
    assert.equal(hiring.headers.get('x-mean-over'), 'hiring')
  })

  test('hires by quarter: 933 rows; CSV by Accept or by format', async () => {
    const json = await (await fetch(`${base}/reports/hires-by-quarter?year=2021`)).json()
    assert.equal(json.length, 933)
    assert.deepEqual(Object.keys(json[0]), ['department', 'job', 'q1', 'q2', 'q3', 'q4'])
    const byAccept = await fetch(`${base}/reports/hires-by-quarter?year=2021`, { headers: { accept: 'text/csv' } })
    assert.match(byAccept.headers.get('content-type') ?? '', /^text\/csv/)
    const csv = await byAccept.text()
    assert.equal(csv.trimEnd().split('\r\n').length, 934)
    assert.equal(csv.split('\r\n')[0], 'department,job,q1,q2,q3,q4')
    assert.equal(await (await fetch(`${base}/reports/hires-by-quarter?format=csv`)).text(), csv)
  })

  test('bad year or option: 400', async () => {
    for (const q of ['year=abc', 'year=0', 'year=20210', 'mean_over=median', 'format=xml']) {
      const res = await fetch(`${base}/reports/departments-above-mean?${q}`)
      assert.equal(res.status, 400, q)
      assert.equal((await res.json()).error.code, `bad_parameter:${q.split('=')[0]}`)
    }
  })
})

describe('static HTML reports', async () => {
  const out = await mkdtemp(join(tmpdir(), 'hirebase-reports-'))
  const written = await writeReports(db.sql, { year: 2021, out, database: describeDatabase(db.url) })

  test('writes both reports, their CSVs and an index', async () => {
    assert.deepEqual((await readdir(out)).sort(), ['departments-above-mean-2021.csv', 'departments-above-mean-2021.html',
      'hires-by-quarter-2021.csv', 'hires-by-quarter-2021.html', 'index.html'])
    assert.equal(written.quarterRows, 933)
    const index = new JSDOM(await readFile(join(out, 'index.html'), 'utf8')).window.document
    assert.deepEqual([...index.querySelectorAll('a')].map((a) => a.getAttribute('href')).filter((h) => h!.endsWith('.html')),
      ['hires-by-quarter-2021.html', 'departments-above-mean-2021.html'])
  })

  const parse = async (name: string) => new JSDOM(await readFile(join(out, name), 'utf8')).window.document

  test('hires by quarter: one bar segment per data row, each with a tooltip; the full table', async () => {
    const doc = await parse('hires-by-quarter-2021.html')
    const segments = doc.querySelectorAll('#stacked svg g[aria-label="bar"] rect')
    assert.equal(segments.length, 933)
    assert.ok([...segments].every((r) => r.querySelector('title')?.textContent?.includes(' / ')))
    assert.equal(doc.querySelectorAll('#heatmap svg g[aria-label="cell"] rect').length, 12 * 4)
    assert.equal(doc.querySelectorAll('#data tbody tr').length, 933)
    assert.equal(doc.querySelector('svg')?.getAttribute('xmlns'), 'http://www.w3.org/2000/svg')
    assert.equal(doc.querySelectorAll('script[src], link[rel="stylesheet"], img[src^="http"]').length, 0, 'self-contained')
  })

  test('departments above the mean: one bar per row, the mean drawn and labelled, provenance', async () => {
    const doc = await parse('departments-above-mean-2021.html')
    assert.equal(doc.querySelectorAll('#bars svg g[aria-label="bar"] rect').length, 7)
    assert.ok(doc.querySelector('#bars svg g[aria-label="rule"]'))
    assert.match(doc.querySelector('#bars svg')!.textContent!, /mean 136\.9 \(over all departments\)/)
    const text = doc.body.textContent!
    assert.match(text, /mean_over = all/)
    assert.match(text, /select \* from report\.departments_above_mean\(2021, mean_over => 'all'\)/)
    assert.match(text, /7 rows, sha256 [0-9a-f]{64}/)
    assert.match(text, new RegExp(describeDatabase(db.url).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    assert.doesNotMatch(await readFile(join(out, 'departments-above-mean-2021.html'), 'utf8'), /postgres:\/\/|password/i)
    const csv = await readFile(join(out, 'departments-above-mean-2021.csv'), 'utf8')
    assert.equal(csv, 'id,department,hired\r\n8,Support,216\r\n5,Engineering,205\r\n6,Human Resources,201\r\n7,Services,200\r\n' +
      '4,Business Development,185\r\n3,Research and Development,148\r\n9,Marketing,142\r\n')
  })

  test('the same data gives the same fingerprint', async () => {
    const again = await mkdtemp(join(tmpdir(), 'hirebase-reports-'))
    await writeReports(db.sql, { year: 2021, out: again, database: 'x' })
    const print = async (dir: string) => (await readFile(join(dir, 'hires-by-quarter-2021.html'), 'utf8')).match(/933 rows, sha256 [0-9a-f]{64}/)?.[0]
    assert.ok(await print(out))
    assert.equal(await print(again), await print(out))
  })
})
