// The one browser test: a generated report opened from disk in headless Chromium.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { test } from 'node:test'
import { loadDirectory } from '../../src/load.ts'
import { writeReports } from '../../src/report.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { freshDatabase } from '../support.ts'

const chromium = (() => { try { return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim() } catch { return '' } })()

test('the report opens from disk in Chromium, draws its chart and shows the numbers', { timeout: 120_000 }, async (t) => {
  if (!chromium) {
    console.warn('SKIPPED: chromium is not installed, so the browser test did not run (apt-get install chromium; CI installs it)')
    return t.skip('chromium is not installed')
  }
  const { chromium: playwright } = await import('playwright-core')
  const db = await freshDatabase()
  await loadDirectory(db.sql, SAMPLE_DIR)
  const out = await mkdtemp(join(tmpdir(), 'hirebase-browser-'))
  await writeReports(db.sql, { year: 2021, out, database: 'test' })
  const browser = await playwright.launch({
    executablePath: chromium,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  })
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    const requests: string[] = []
    page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()) })
    await page.goto(pathToFileURL(join(out, 'index.html')).href)
    await page.click('text=Departments hiring above the mean')
    await page.waitForSelector('#bars svg')
    assert.equal(await page.locator('#bars svg g[aria-label="bar"] rect').count(), 7)
    const box = await page.locator('#bars svg').boundingBox()
    assert.ok(box && box.width > 300 && box.height > 150, 'the chart is drawn at a readable size')
    assert.match(await page.locator('#bars svg').textContent() ?? '', /216/)
    // Sorting by the hired column puts the smallest first.
    await page.click('#data th:nth-child(3)')
    assert.equal(await page.locator('#data tbody tr:first-child td:nth-child(3)').textContent(), '142')
    const shot = join(out, 'departments-above-mean-2021.png')
    await page.screenshot({ path: shot, fullPage: true })
    console.log(`screenshot: ${shot}`)
    assert.deepEqual(requests, [], 'no network requests')
  } finally {
    await browser.close()
  }
})
