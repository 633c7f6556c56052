// The report API (JSON and CSV) and the static HTML reports.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { JSDOM } from 'jsdom'
import { loadDirectory } from '../../src/load.ts'
import { describeDatabase } from '../../src/database.ts'
import { quarterHeatmap } from '../../src/report/charts.ts'
import { writeReports } from '../../src/report/write.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { freshDatabase, listenApi } from '../support.ts'

const db = await freshDatabase()
await loadDirectory(db.sql, SAMPLE_DIR)
const { base } = await listenApi({ databaseUrl: db.url })

describe('report API', () => {
  test('departments above the mean: JSON by default, the mean in headers', async () => {
    const res = await fetch(`${base}/reports/departments-above-mean?year=2021`)
    assert.equal(res.status, 200)
    assert.deepEqual(
      (await res.json()).map((r: any) => [r.department, r.hired]),
      [
        ['Support', 216],
        ['Engineering', 205],
        ['Human Resources', 201],
        ['Services', 200],
        ['Business Development', 185],
        ['Research and Development', 148],
        ['Marketing', 142],
      ],
    )
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
  const written = await writeReports(db.sql, { years: [2021], out, database: describeDatabase(db.url) })
  const html = (name: string) => readFile(join(out, name), 'utf8')
  const parse = async (name: string) => new JSDOM(await html(name)).window.document

  test('writes both reports and their CSVs for every year with hires, and an index linking them all', async () => {
    const pages = (y: number) => [
      `departments-above-mean-${y}.csv`,
      `departments-above-mean-${y}.html`,
      `hires-by-quarter-${y}.csv`,
      `hires-by-quarter-${y}.html`,
    ]
    assert.deepEqual((await readdir(out)).sort(), [...pages(2021), ...pages(2022), 'index.html'].sort())
    assert.deepEqual(written.yearsWithData, [2021, 2022])
    assert.equal(written.years.find((y) => y.year === 2021)?.quarterRows, 933)
    const index = await parse('index.html')
    assert.deepEqual(
      [...index.querySelectorAll('a')].map((a) => a.getAttribute('href')).filter((h) => h!.endsWith('.html')),
      ['hires-by-quarter-2021.html', 'departments-above-mean-2021.html', 'hires-by-quarter-2022.html', 'departments-above-mean-2022.html'],
    )
  })

  test('hires by quarter: heatmap with row and column totals, the top jobs, one small chart per department, the full table', async () => {
    const doc = await parse('hires-by-quarter-2021.html')
    const cells = (id: string) => [...doc.querySelectorAll(`#${id} svg g[aria-label="cell"] rect`)]
    // 12 departments x 4 quarters in colour, then 12 row totals + 4 column totals + the grand total.
    assert.equal(cells('heatmap').length, 12 * 4 + 12 + 4 + 1)
    const totals = [...doc.querySelectorAll('#heatmap svg g[aria-label="text"]')].at(-1)!.textContent
    assert.match(totals ?? '', /249454453487.*1,?643/) // the column totals and the year's total
    assert.equal(cells('top-jobs').length, 15 * 5)
    assert.match(cells('top-jobs')[0].querySelector('title')!.textContent!, /^Programmer IV, Q1 2021: 3 hires$/)
    assert.equal(doc.querySelectorAll('#multiples svg g[aria-label="bar"] rect').length, 12 * 4)
    assert.equal(doc.querySelectorAll('#stacked').length, 0, 'the one-segment-per-job bars are gone')
    assert.equal(doc.querySelectorAll('#data tbody tr').length, 933)
    assert.deepEqual(
      [...doc.querySelectorAll('#data th')].map((th) => th.textContent),
      ['department', 'job', 'q1', 'q2', 'q3', 'q4', 'total'],
    )
    assert.equal(doc.querySelector('svg')?.getAttribute('xmlns'), 'http://www.w3.org/2000/svg')
    assert.equal(doc.querySelectorAll('script[src], link[rel="stylesheet"], img[src^="http"]').length, 0, 'self-contained')
  })

  test('every heatmap label is readable on its cell (WCAG contrast >= 4.5), also when all counts are close', () => {
    // sRGB relative luminance and contrast ratio (WCAG 2).
    const luminance = (color: string) => {
      const rgb = color === 'white' ? [255, 255, 255] : color === 'black' ? [0, 0, 0] : color.match(/\d+/g)!.map(Number)
      const [r, g, b] = rgb.map((v) => (v / 255 <= 0.03928 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4))
      return 0.2126 * r + 0.7152 * g + 0.0722 * b
    }
    const contrast = (a: string, b: string) => {
      const [l1, l2] = [luminance(a), luminance(b)].sort((x, y) => y - x)
      return (l1 + 0.05) / (l2 + 0.05)
    }
    // 255-371 hires in every cell (a large load): the labels were white on pale blue.
    const close = Array.from({ length: 20 }, (_, i) => ({
      name: `Department ${i}`,
      quarters: [255 + i, 300 + i * 3, 371 - i, 280 + i * 2] as [number, number, number, number],
    }))
    const spread = Array.from({ length: 12 }, (_, i) => ({
      name: `Department ${i}`,
      quarters: [i, 3 * i, 70 - i, 5] as [number, number, number, number],
    }))
    for (const items of [close, spread]) {
      const doc = new JSDOM(quarterHeatmap(items, 2021, { columnTotals: false, totalLabel: 'Total' })).window.document
      const fills = [...doc.querySelectorAll('g[aria-label="cell"] rect')].slice(0, items.length * 4).map((r) => r.getAttribute('fill')!)
      const labels = [...[...doc.querySelectorAll('g[aria-label="text"]')][0].querySelectorAll('text')].map((t) => t.getAttribute('fill')!)
      assert.equal(labels.length, fills.length)
      fills.forEach((fill, i) =>
        assert.ok(contrast(fill, labels[i]) >= 4.5, `${labels[i]} on ${fill}: ${contrast(fill, labels[i]).toFixed(2)}`),
      )
    }
  })

  test('headline numbers: hires, departments and jobs hiring, the mean, the change against the year before', async () => {
    const cards = async (name: string) => [...(await parse(name)).querySelectorAll('#headline .card')].map((c) => c.textContent)
    for (const name of ['hires-by-quarter-2021.html', 'departments-above-mean-2021.html']) {
      assert.deepEqual(await cards(name), [
        '1,643hires in 2021',
        '12departments hiring (of 12)',
        '171jobs hiring',
        '136.9mean hires per department (over all of them)',
        '—no hires in 2020 to compare with',
      ])
    }
    // The samples' 2022 stops in February: it is compared with the first quarter of 2021 (249 hires), not the whole year.
    assert.deepEqual((await cards('hires-by-quarter-2022.html')).slice(0, 3), [
      '286hires in 2022 (none after Q1)',
      '12departments hiring (of 12)',
      '117jobs hiring',
    ])
    assert.equal((await cards('hires-by-quarter-2022.html'))[4], '+14.9%vs Q1 2021 (249 hires)') // (286 - 249) / 249
    assert.match(
      (await parse('hires-by-quarter-2022.html')).querySelector('#heatmap figcaption')!.textContent!,
      /no hires after Q1 2022\.$/,
    )
    assert.doesNotMatch((await parse('hires-by-quarter-2021.html')).querySelector('#heatmap figcaption')!.textContent!, /no hires after/)
  })

  test('departments above the mean: every department, those above in colour, the mean drawn and labelled, the title once', async () => {
    const doc = await parse('departments-above-mean-2021.html')
    const bars = [...doc.querySelectorAll('#above-mean svg g[aria-label="bar"] rect')]
    assert.equal(bars.length, 12)
    const fills = bars.map((b) => b.getAttribute('fill'))
    assert.equal(new Set(fills.slice(0, 7)).size, 1)
    assert.ok(
      fills.slice(7).every((f) => f !== fills[0]),
      'the 5 below the mean are in another colour',
    )
    assert.match(bars[7].querySelector('title')!.textContent!, /^Training: 111 hires \(at or below the mean\)$/)
    assert.ok(doc.querySelector('#above-mean svg g[aria-label="rule"]'))
    assert.match([...doc.querySelectorAll('#above-mean svg')].at(-1)!.textContent!, /mean 136\.9 \(over all departments\)/)
    assert.equal(doc.body.textContent!.split('Departments hiring above the mean, 2021').length - 1, 1, 'the title once')
    assert.equal(doc.querySelectorAll('figure h2, svg h2').length, 0)
    assert.equal(doc.querySelectorAll('#data tbody tr').length, 7)
    const text = doc.body.textContent!
    assert.match(text, /mean_over = all/)
    assert.match(text, /select \* from report\.departments_above_mean\(2021, mean_over => 'all'\)/)
    assert.match(text, /7 rows, sha256 [0-9a-f]{64}/)
    assert.match(text, new RegExp(describeDatabase(db.url).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    assert.doesNotMatch(await html('departments-above-mean-2021.html'), /postgres:\/\/|password/i)
    const csv = await readFile(join(out, 'departments-above-mean-2021.csv'), 'utf8')
    assert.equal(
      csv,
      'id,department,hired\r\n8,Support,216\r\n5,Engineering,205\r\n6,Human Resources,201\r\n7,Services,200\r\n' +
        '4,Business Development,185\r\n3,Research and Development,148\r\n9,Marketing,142\r\n',
    )
  })

  test('the Content Security Policy lets nothing load and allows only the table script, by its hash', async () => {
    for (const name of ['index.html', 'hires-by-quarter-2021.html', 'departments-above-mean-2022.html']) {
      const doc = await parse(name)
      const csp = doc.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? ''
      assert.match(csp, /default-src 'none'/, name)
      const scripts = [...doc.querySelectorAll('script')].map((s) => s.textContent!)
      const hashes = [...csp.matchAll(/'sha256-([^']+)'/g)].map((m) => m[1])
      assert.deepEqual(
        hashes,
        scripts.map((s) => createHash('sha256').update(s).digest('base64')),
        name,
      )
    }
  })

  test('a year without hires: pages that say so and link the years with data', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'hirebase-reports-'))
    const r = await writeReports(db.sql, { years: [2020], out: empty, database: 'x' })
    assert.deepEqual(
      r.years.map((y) => [y.year, y.hires]),
      [
        [2020, 0],
        [2021, 1643],
        [2022, 286],
      ],
    )
    for (const name of ['hires-by-quarter-2020.html', 'departments-above-mean-2020.html']) {
      const doc = new JSDOM(await readFile(join(empty, name), 'utf8')).window.document
      assert.match(doc.querySelector('#no-data')!.textContent!, /No hires in 2020/)
      assert.deepEqual(
        [...doc.querySelectorAll('#no-data a')].map((a) => a.textContent),
        ['2021', '2022'],
      )
      assert.equal(doc.querySelectorAll('svg').length, 0)
    }
    assert.equal(await readFile(join(empty, 'hires-by-quarter-2020.csv'), 'utf8'), 'department,job,q1,q2,q3,q4\r\n')
    const index = new JSDOM(await readFile(join(empty, 'index.html'), 'utf8')).window.document
    assert.match(index.querySelector('#years tbody tr')!.textContent!, /^2020no hires/)
  })

  test('the same data gives the same fingerprint', async () => {
    const again = await mkdtemp(join(tmpdir(), 'hirebase-reports-'))
    await writeReports(db.sql, { years: [2021], out: again, database: 'x' })
    const print = async (dir: string) =>
      (await readFile(join(dir, 'hires-by-quarter-2021.html'), 'utf8')).match(/933 rows, sha256 [0-9a-f]{64}/)?.[0]
    assert.ok(await print(out))
    assert.equal(await print(again), await print(out))
  })
})
