// Reports with hostile names, opened in headless Chromium: no data value reaches an attribute
// that can load a URL (0 network requests, even before the pages' Content Security Policy), and
// long names wrap in the table and are cut, with a tooltip, in the charts.
import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { test } from 'node:test'
import { writeReports } from '../../src/report/write.ts'
import { chromiumOrSkip, freshDatabase } from '../support.ts'

test('hostile department names: 0 network requests, long names wrap and are cut with a tooltip', { timeout: 120_000 }, async (t) => {
  const browser = await chromiumOrSkip(t, 'the hostile-names browser test')
  if (!browser) return
  // Anything fetched from here is a leak.
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(req.url ?? '')
    res.end('')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const long = `Department-${'x'.repeat(300)}-end`
  const db = await freshDatabase()
  // 2022: only names that look like colours (so a chart would take them as literal fills);
  // 2023: a 314-character name without a space beside an ordinary one.
  await db.sql`insert into data.departments values (1, ${`url(${base}/fill)`}), (2, 'red'), (3, ${long}), (4, 'Ops'),
    (5, ${`<img src="${base}/img">`})`
  await db.sql`insert into data.jobs values (1, ${`url(${base}/job)`})`
  await db.sql`insert into data.employees select g, 'e' || g, case when g <= 30 then '2022-02-01T00:00:00Z'::timestamptz else '2023-05-01T00:00:00Z' end,
    case when g <= 20 then 1 when g <= 30 then 2 when g <= 60 then 3 when g <= 62 then 4 else 5 end, 1 from generate_series(1, 70) g`
  const out = await mkdtemp(join(tmpdir(), 'hirebase-hostile-'))
  await writeReports(db.sql, { years: [2022], out: join(out, '2022'), database: 'test' })
  await writeReports(db.sql, { years: [2023], out: join(out, '2023'), database: 'test' })
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    const requests: string[] = []
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) requests.push(r.url())
    })
    for (const year of [2022, 2023]) {
      for (const name of [`hires-by-quarter-${year}.html`, `departments-above-mean-${year}.html`]) {
        await page.goto(pathToFileURL(join(out, String(year), name)).href)
        await page.waitForSelector('svg')
        await page.waitForTimeout(300)
        // No attribute anywhere holds a data value that names a URL.
        const urls = await page.evaluate(() =>
          [...document.querySelectorAll('*')].flatMap((e) =>
            [...e.attributes]
              .filter((a) => /url\(|^(src|href)$/i.test(a.value) || (/^(src|href)$/i.test(a.name) && /^https?:/i.test(a.value)))
              .map((a) => `${e.tagName} ${a.name}=${a.value}`),
          ),
        )
        assert.deepEqual(urls, [], `${name}: ${urls.join(', ')}`)
        // The page is no wider than the window: long names wrap in the table.
        const width = await page.evaluate(() => document.documentElement.scrollWidth)
        assert.ok(width <= 1280, `${name} is ${width} px wide`)
      }
    }
    // In the 2023 charts the long name is cut, and carries the full name as a tooltip: on the
    // y axes (heatmap, every department against the mean) and in the small multiples' labels.
    for (const [name, selector] of [
      ['hires-by-quarter-2023.html', '#heatmap svg g[aria-label="y-axis tick label"] text'],
      ['hires-by-quarter-2023.html', '#multiples svg g[aria-label="text"] text'],
      ['departments-above-mean-2023.html', '#above-mean svg g[aria-label="y-axis tick label"] text'],
    ]) {
      await page.goto(pathToFileURL(join(out, '2023', name)).href)
      const texts = await page.evaluate(
        (s) =>
          [...document.querySelectorAll(s)].map((e) => ({
            shown: [...e.childNodes]
              .filter((n) => n.nodeType === 3)
              .map((n) => n.textContent)
              .join(''),
            title: e.querySelector('title')?.textContent ?? null,
          })),
        selector,
      )
      const cut = texts.find((text) => text.title?.startsWith('Department-'))
      assert.ok(cut, `${name} ${selector}: ${JSON.stringify(texts)}`)
      assert.ok(cut.title === long || cut.title === `${long} (30)`, cut.title!)
      assert.ok(cut.shown.endsWith('…') && cut.shown.length < 40, cut.shown)
    }
    assert.deepEqual(requests, [], 'no network requests')
    assert.deepEqual(hits, [], 'nothing reached the local server')
  } finally {
    await browser.close()
    server.close()
  }
})
