// The generated reports opened from disk in headless Chromium: every page that index.html links,
// without console errors or network requests, a chart in every chart section, the table's filter
// and sorting, the page of a year without hires, and print on a few A4 pages. Screenshots and the
// printed PDFs are kept in reports/test-output/browser/ (git-ignored; TEST_OUTPUT_DIR moves it).
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { test } from 'node:test'
import { loadDirectory } from '../../src/load.ts'
import { projectRoot } from '../../src/paths.ts'
import { hiresByQuarter } from '../../src/report/data.ts'
import { writeReports } from '../../src/report/write.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { chromiumOrSkip, freshDatabase } from '../support.ts'

const MAX_PRINTED_PAGES = 4

test(
  'the reports in Chromium: every linked page, its charts, the filter, sorting, the no-data page, print',
  { timeout: 300_000 },
  async (t) => {
    const browser = await chromiumOrSkip(t, 'the browser test')
    if (!browser) return
    const db = await freshDatabase()
    await loadDirectory(db.sql, SAMPLE_DIR) // hires in 2021 and 2022
    const out = await mkdtemp(join(tmpdir(), 'hirebase-browser-'))
    await writeReports(db.sql, { years: [2020], out, database: 'test' })
    const shots = process.env.TEST_OUTPUT_DIR ?? join(projectRoot, 'reports', 'test-output', 'browser')
    await mkdir(shots, { recursive: true })
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
      const requests: string[] = []
      const errors: string[] = []
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) requests.push(r.url())
      })
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') errors.push(`${page.url()}: ${m.text()}`)
      })
      page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`))
      const open = (name: string) => page.goto(pathToFileURL(join(out, name)).href)

      await open('index.html')
      const linked = await page.$$eval('a[href$=".html"]', (as) => as.map((a) => a.getAttribute('href')!))
      assert.deepEqual(
        [...new Set(linked.map((h) => Number(/-(\d+)\.html$/.exec(h)![1])))],
        [2020, 2021, 2022],
        'index.html links every year',
      )
      await page.screenshot({ path: join(shots, 'index.png'), fullPage: true })

      for (const name of linked) {
        await open(name)
        const title = await page.locator('h1').textContent()
        if (name.endsWith('2020.html')) {
          // The year without hires says so and links the years that have some; no empty chart.
          assert.match((await page.locator('#no-data').textContent()) ?? '', /No hires in 2020/)
          const kind = name.replace('-2020.html', '')
          assert.deepEqual(await page.$$eval('#no-data a', (as) => as.map((a) => a.getAttribute('href'))), [
            `${kind}-2021.html`,
            `${kind}-2022.html`,
          ])
          assert.equal(await page.locator('svg').count(), 0)
        } else {
          const sections = await page.locator('section.chart-section').evaluateAll((ss) =>
            ss.map((s) => {
              const svg = [...s.querySelectorAll('svg')].at(-1)
              const box = svg?.getBoundingClientRect()
              return { id: s.id, width: box?.width ?? 0, height: box?.height ?? 0 }
            }),
          )
          const expected = name.startsWith('hires-by-quarter')
            ? ['headline', 'heatmap', 'top-jobs', 'multiples']
            : ['headline', 'above-mean']
          assert.deepEqual(
            sections.map((s) => s.id),
            expected,
            name,
          )
          for (const s of sections) assert.ok(s.width > 150 && s.height > 120, `${name} #${s.id}: chart drawn at ${s.width}x${s.height}`)
          // Printed: a few A4 pages (the long table is left to the CSV).
          const pdf = await page.pdf({ format: 'A4' })
          const pages = pdf.toString('latin1').match(/\/Type\s*\/Page[^s]/g)?.length ?? 0
          assert.ok(pages >= 1 && pages <= MAX_PRINTED_PAGES, `${name} prints on ${pages} pages`)
          await page.pdf({ format: 'A4', path: join(shots, name.replace('.html', '.pdf')) })
          t.diagnostic(`${name}: "${title}", ${sections.length} chart sections, ${pages} printed pages`)
        }
        await page.screenshot({ path: join(shots, name.replace('.html', '.png')), fullPage: true })
      }

      // The filter: rows whose department or job holds the text, case-insensitively.
      const rows = (await hiresByQuarter(db.sql, 2021)).rows
      const matching = rows.filter((r) => `${r.department}\t${r.job}`.toLowerCase().includes('engineer')).length
      assert.ok(matching > 0 && matching < rows.length)
      await open('hires-by-quarter-2021.html')
      const shown = page.locator('#data tbody tr:not([hidden])')
      await page.fill('#filter', 'ENGINEER')
      assert.equal(await shown.count(), matching)
      assert.equal(await page.locator('#shown').textContent(), `${matching} of ${rows.length} rows match`)
      assert.ok((await shown.allTextContents()).every((text) => text.toLowerCase().includes('engineer')))
      await page.locator('#table').screenshot({ path: join(shots, 'hires-by-quarter-2021-filtered.png') })
      await page.fill('#filter', '')
      assert.equal(await shown.count(), rows.length)
      // A number column sorts largest first, and the heading shows the direction.
      await page.click('#data th:nth-child(7) button')
      assert.equal(await page.locator('#data th:nth-child(7)').getAttribute('aria-sort'), 'descending')
      const largest = Math.max(...rows.map((r) => r.q1 + r.q2 + r.q3 + r.q4))
      assert.equal(await page.locator('#data tbody tr:first-child td:nth-child(7)').textContent(), String(largest))

      await open('departments-above-mean-2021.html')
      const first = (column: number) => page.locator(`#data tbody tr:first-child td:nth-child(${column})`).textContent()
      await page.click('#data th:nth-child(3) button')
      assert.equal(await page.locator('#data th:nth-child(3)').getAttribute('aria-sort'), 'descending')
      assert.equal(await first(3), '216')
      await page.click('#data th:nth-child(3) button')
      assert.equal(await page.locator('#data th:nth-child(3)').getAttribute('aria-sort'), 'ascending')
      assert.equal(await first(3), '142')
      const arrow = await page.$eval('#data th:nth-child(3) button', (b) => getComputedStyle(b, '::after').content)
      assert.equal(arrow, '" ▲"')
      await page.click('#data th:nth-child(2) button') // text sorts A to Z first
      assert.equal(await page.locator('#data th:nth-child(2)').getAttribute('aria-sort'), 'ascending')
      assert.equal(await first(2), 'Business Development')
      assert.equal(await page.locator('#data th:nth-child(3)').getAttribute('aria-sort'), 'none')

      assert.deepEqual(errors, [], 'no console errors or warnings')
      assert.deepEqual(requests, [], 'no network requests')
      t.diagnostic(`screenshots and PDFs: ${shots} (${(await readdir(shots)).length} files)`)
      console.log(`report screenshots and PDFs: ${shots}`)
    } finally {
      await browser.close()
    }
  },
)
