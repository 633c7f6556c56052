// The two hiring metrics: fetched from the database's report functions, written as CSV and
// as self-contained HTML pages whose charts Observable Plot draws server-side (jsdom).
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import * as Plot from '@observablehq/plot'
import { JSDOM } from 'jsdom'
import type { Queryable } from './database.ts'
import { outputFolder, writeFileAtomically } from './files.ts'
import { projectVersion } from './paths.ts'

export type MeanOver = 'all' | 'hiring'
export interface QuarterRow { department: string; job: string; q1: number; q2: number; q3: number; q4: number }
export interface AboveMeanRow { id: number; department: string; hired: number }

export interface Metric<Row> {
  rows: Row[]
  /** The statement run, with its parameters written in, for the page's provenance. */
  statement: string
  /** The function's definition, as the database holds it. */
  definition: string
}

const literal = (v: string | number) => (typeof v === 'number' ? String(v) : `'${v.replaceAll("'", "''")}'`)

export async function hiresByQuarter(sql: Queryable, year: number): Promise<Metric<QuarterRow>> {
  const rows = await sql<QuarterRow[]>`select * from report.hires_by_quarter(${year})`
  return { rows: [...rows], statement: `select * from report.hires_by_quarter(${literal(year)});`, definition: await definitionOf(sql, 'report.hires_by_quarter(integer)') }
}

export async function departmentsAboveMean(sql: Queryable, year: number, meanOver: MeanOver): Promise<Metric<AboveMeanRow> & { mean: number | null }> {
  const [{ mean }] = await sql<{ mean: string | null }[]>`select report.hiring_mean(${year}, ${meanOver}) as mean`
  const rows = await sql<AboveMeanRow[]>`select * from report.departments_above_mean(${year}, mean_over => ${meanOver})`
  return {
    rows: [...rows],
    mean: mean === null ? null : Number(mean),
    statement: `select * from report.departments_above_mean(${literal(year)}, mean_over => ${literal(meanOver)});\n` +
      `select report.hiring_mean(${literal(year)}, ${literal(meanOver)});  -- the mean drawn as a rule`,
    definition: await definitionOf(sql, 'report.departments_above_mean(integer, text)') + '\n' + await definitionOf(sql, 'report.hiring_mean(integer, text)'),
  }
}

async function definitionOf(sql: Queryable, signature: string): Promise<string> {
  const [{ def }] = await sql<{ def: string }[]>`select pg_get_functiondef(${signature}::regprocedure) as def`
  return def
}

/**
 * CSV for people (report files, ?format=csv). A text cell starting with =, +, -, @, tab or CR
 * would be run as a formula by a spreadsheet: it gets a leading ' (OWASP's advice on CSV
 * injection). Numbers are left as they are; JSON and Avro keep every value raw.
 */
export function toCsv(rows: object[], columns: string[]): string {
  const cell = (v: unknown) => {
    const s = typeof v === 'string' && /^[=+\-@\t\r]/.test(v) ? `'${v}` : String(v ?? '')
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
  }
  return [columns.join(','), ...rows.map((r) => columns.map((c) => cell((r as Record<string, unknown>)[c])).join(','))].join('\r\n') + '\r\n'
}

export const QUARTER_COLUMNS = ['department', 'job', 'q1', 'q2', 'q3', 'q4']
export const ABOVE_MEAN_COLUMNS = ['id', 'department', 'hired']

export const MEAN_DEFINITIONS: Record<MeanOver, string> = {
  all: 'the year\'s hires divided by the number of departments in the departments table (departments without hires count as zero)',
  hiring: 'the year\'s hires divided by the number of departments that hired someone that year',
}

// ---- HTML ----

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

// Data never chooses a colour: Plot reads a channel whose values all look like colours
// (say a department named url(https://...)) as literal fills, which a browser would fetch,
// unless the channel is bound to the colour scale ({ value, scale: 'color' }) with its range.
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac']
const ordinalColours = (domain: string[]) => ({ type: 'ordinal' as const, domain, range: PALETTE })
/** Names on a chart's y axis are cut to fit its margin; the full name is the tick's tooltip. */
const nameAxis = () => Plot.axisY({ label: null, textOverflow: 'ellipsis-end', lineWidth: 17 })

function svgOf(options: Plot.PlotOptions): string {
  const { window } = new JSDOM('')
  const chart = Plot.plot({ ...options, document: window.document }) as unknown as Element
  for (const svg of [chart, ...chart.querySelectorAll('svg')].filter((e) => e.tagName.toLowerCase() === 'svg')) {
    svg.setAttribute('xmlns', 'http://www.w3.org/2000/svg')
  }
  return chart.outerHTML
}

/** Where the numbers came from: enough to reproduce them and to compare two reports. */
export interface Provenance { year: number; generatedAt: Date; database: string; meanOver?: MeanOver }

function fingerprint(csv: string, rows: number): string {
  return `${rows} rows, sha256 ${createHash('sha256').update(csv).digest('hex')} (of the CSV)`
}

function page(title: string, p: Provenance, metric: Metric<object>, csv: string, csvName: string, charts: string[], columns: string[], intro: string): string {
  const head = columns.map((c, i) => `<th scope="col" data-col="${i}" aria-sort="none">${escapeHtml(c)}</th>`).join('')
  const body = metric.rows.map((r) => `<tr>${columns.map((c) => {
    const v = (r as Record<string, unknown>)[c]
    return typeof v === 'number' ? `<td class="num">${v}</td>` : `<td>${escapeHtml(String(v))}</td>`
  }).join('')}</tr>`).join('\n')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1b1b1b; }
  h1 { font-size: 1.6rem; margin-bottom: .2rem; } .sub { color: #555; margin-top: 0; }
  figure { margin: 1.5rem 0; overflow-x: auto; } figcaption { color: #555; font-size: .9rem; }
  table.data { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  table.data th, table.data td { border-bottom: 1px solid #e3e3e3; padding: .25rem .6rem; text-align: left; }
  table.data td { overflow-wrap: anywhere; } /* a long name wraps instead of widening the page */
  table.data th { position: sticky; top: 0; background: #f6f6f6; cursor: pointer; user-select: none; }
  table.data td.num { text-align: right; }
  .scroll { max-height: 36rem; overflow: auto; border: 1px solid #e3e3e3; }
  dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; font-size: .9rem; }
  dl.prov dt { color: #555; } pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; font-size: .8rem; }
  @media print { .scroll { max-height: none; overflow: visible; border: 0; } th { position: static; } a { color: inherit; } body { margin: 0; max-width: none; } }
</style>
</head>
<body>
<p><a href="index.html">All reports</a></p>
<h1>${escapeHtml(title)}</h1>
<p class="sub">${intro}</p>
${charts.join('\n')}
<h2>Data</h2>
<p>${metric.rows.length} rows — <a href="${escapeHtml(csvName)}">download CSV</a>. Click a column heading to sort.</p>
<div class="scroll"><table class="data" id="data"><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table></div>
<h2>Provenance</h2>
<dl class="prov">
  <dt>Year</dt><dd>${p.year}</dd>
  ${p.meanOver ? `<dt>Mean</dt><dd>mean_over = ${p.meanOver}: ${escapeHtml(MEAN_DEFINITIONS[p.meanOver])}</dd>` : ''}
  <dt>Generated</dt><dd><time datetime="${p.generatedAt.toISOString()}">${p.generatedAt.toISOString()}</time> by hirebase ${escapeHtml(projectVersion)}</dd>
  <dt>Database</dt><dd>${escapeHtml(p.database)}</dd>
  <dt>Fingerprint</dt><dd>${escapeHtml(fingerprint(csv, metric.rows.length))}</dd>
</dl>
<h3>SQL</h3>
<pre>${escapeHtml(metric.statement)}</pre>
<details><summary>Definition of the report functions</summary><pre>${escapeHtml(metric.definition)}</pre></details>
<script>
// Sorting is a convenience: the page reads the same without script.
document.querySelectorAll('#data th').forEach((th) => th.addEventListener('click', () => {
  const i = Number(th.dataset.col), tbody = document.querySelector('#data tbody')
  const dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1
  document.querySelectorAll('#data th').forEach((h) => h.setAttribute('aria-sort', 'none'))
  th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending')
  const rows = [...tbody.rows], num = rows.every((r) => r.cells[i].classList.contains('num'))
  rows.sort((a, b) => dir * (num ? a.cells[i].textContent - b.cells[i].textContent : a.cells[i].textContent.localeCompare(b.cells[i].textContent)))
  tbody.append(...rows)
}))
</script>
</body>
</html>
`
}

export function hiresByQuarterPage(metric: Metric<QuarterRow>, p: Provenance, csv: string, csvName: string): string {
  const quarters = ['q1', 'q2', 'q3', 'q4'] as const
  const cells = new Map<string, number>()
  for (const r of metric.rows) for (const q of quarters) cells.set(`${r.department}\u0000${q}`, (cells.get(`${r.department}\u0000${q}`) ?? 0) + r[q])
  const heat = [...cells].map(([k, hires]) => { const [department, quarter] = k.split('\u0000'); return { department, quarter: quarter.toUpperCase(), hires } })
  const departments = [...new Set(metric.rows.map((r) => r.department))]
  const darkFrom = Math.max(0, ...heat.map((d) => d.hires)) * 0.6 // white labels on the darker cells
  const total = (r: QuarterRow) => r.q1 + r.q2 + r.q3 + r.q4
  const heatmap = svgOf({
    title: `Hires per department and quarter, ${p.year}`,
    width: 720, height: 60 + 28 * departments.length, marginLeft: 190,
    x: { label: 'Quarter (UTC)', domain: ['Q1', 'Q2', 'Q3', 'Q4'], axis: 'top' }, y: { label: null, domain: departments },
    color: { type: 'linear', scheme: 'blues', label: 'Hires' }, // no legend: it needs canvas, and every cell is labelled
    marks: [
      nameAxis(),
      Plot.cell(heat, { x: 'quarter', y: 'department', fill: { value: 'hires', scale: 'color' }, inset: 0.5, title: (d: typeof heat[0]) => `${d.department}, ${d.quarter} ${p.year}: ${d.hires} hires` }),
      Plot.text(heat, { x: 'quarter', y: 'department', text: 'hires', fill: (d: typeof heat[0]) => (d.hires > darkFrom ? 'white' : 'black') }),
    ],
  })
  // One segment per department and job, stacked per department: the job detail is in each tooltip.
  const stacked = svgOf({
    title: `Hires per department in ${p.year}, one segment per job`,
    width: 960, height: 60 + 28 * departments.length, marginLeft: 190,
    x: { label: 'Hires in the year →', grid: true }, y: { label: null, domain: departments },
    color: ordinalColours(departments),
    marks: [
      nameAxis(),
      Plot.barX(metric.rows, {
        x: total, y: 'department', fill: { value: 'department', scale: 'color' }, stroke: 'white', strokeWidth: 0.5,
        title: (r: QuarterRow) => `${r.department} / ${r.job}: ${total(r)} hires (Q1 ${r.q1}, Q2 ${r.q2}, Q3 ${r.q3}, Q4 ${r.q4})`,
      }),
      Plot.ruleX([0]),
    ],
  })
  const hires = metric.rows.reduce((n, r) => n + total(r), 0)
  return page(`Hires by quarter, ${p.year}`, p, metric, csv, csvName, [
    `<figure class="chart" id="heatmap">${heatmap}<figcaption>Each cell: the department's hires in that quarter of ${p.year} (UTC). Hover for the exact count.</figcaption></figure>`,
    `<figure class="chart" id="stacked">${stacked}<figcaption>Each segment is one job of the department; hover for its quarters.</figcaption></figure>`,
  ], QUARTER_COLUMNS, `${hires} hires in ${p.year} across ${departments.length} departments and ${metric.rows.length} department/job pairs, by quarter of the UTC hiring instant.`)
}

export function departmentsAboveMeanPage(metric: Metric<AboveMeanRow> & { mean: number | null }, p: Provenance & { meanOver: MeanOver }, csv: string, csvName: string): string {
  const mean = metric.mean ?? 0
  const label = `mean ${mean.toFixed(1)} (${p.meanOver === 'all' ? 'over all departments' : 'over hiring departments'})`
  const chart = svgOf({
    title: `Departments hiring above the mean, ${p.year}`,
    width: 860, height: 70 + 32 * metric.rows.length, marginLeft: 190, marginRight: 60,
    x: { label: 'Hires in the year →', grid: true, domain: [0, Math.max(mean, ...metric.rows.map((r) => r.hired)) * 1.1] },
    y: { label: null, domain: metric.rows.map((r) => r.department) },
    marks: [
      nameAxis(),
      Plot.barX(metric.rows, { x: 'hired', y: 'department', fill: '#4e79a7', title: (r: AboveMeanRow) => `${r.department}: ${r.hired} hires in ${p.year}` }),
      Plot.text(metric.rows, { x: 'hired', y: 'department', text: 'hired', dx: 4, textAnchor: 'start' }),
      Plot.ruleX([mean], { stroke: '#e15759', strokeWidth: 2, strokeDasharray: '4,3' }),
      Plot.text([mean], { x: (d: number) => d, frameAnchor: 'top', dy: -2, text: () => label, fill: '#e15759', textAnchor: 'middle', lineAnchor: 'bottom' }),
      Plot.ruleX([0]),
    ],
  })
  return page(`Departments hiring above the mean, ${p.year}`, p, metric, csv, csvName, [
    `<figure class="chart" id="bars">${chart}<figcaption>The dashed line is the ${escapeHtml(label)}.</figcaption></figure>`,
  ], ABOVE_MEAN_COLUMNS, `${metric.rows.length} departments hired more than the ${escapeHtml(label)} in ${p.year}. ` +
    `The mean is ${escapeHtml(MEAN_DEFINITIONS[p.meanOver])}.`)
}

export { describeDatabase } from './database.ts'

export interface ReportFiles { files: string[]; quarterRows: number; aboveMeanRows: number }

/** Writes both metrics' HTML and CSV for a year, and index.html, into `out`. */
export async function writeReports(sql: Queryable, options: { year: number; out: string; meanOver?: MeanOver; database: string; force?: boolean }): Promise<ReportFiles> {
  const { year, out } = options
  const meanOver = options.meanOver ?? 'all'
  await outputFolder(out, { force: options.force })
  const generatedAt = new Date()
  const provenance = { year, generatedAt, database: options.database }
  const quarters = await hiresByQuarter(sql, year)
  const aboveMean = await departmentsAboveMean(sql, year, meanOver)
  const names = { q: `hires-by-quarter-${year}`, m: `departments-above-mean-${year}` }
  const qCsv = toCsv(quarters.rows, QUARTER_COLUMNS)
  const mCsv = toCsv(aboveMean.rows, ABOVE_MEAN_COLUMNS)
  const files: [string, string][] = [
    [`${names.q}.csv`, qCsv],
    [`${names.q}.html`, hiresByQuarterPage(quarters, provenance, qCsv, `${names.q}.csv`)],
    [`${names.m}.csv`, mCsv],
    [`${names.m}.html`, departmentsAboveMeanPage(aboveMean, { ...provenance, meanOver }, mCsv, `${names.m}.csv`)],
  ]
  const index = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hirebase reports</title>
<style>body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 48rem; padding: 0 1rem; } li { margin: .5rem 0; }</style></head>
<body>
<h1>hirebase reports</h1>
<p>Generated ${generatedAt.toISOString()} from ${escapeHtml(options.database)}.</p>
<ul>
  <li><a href="${names.q}.html">Hires by quarter, ${year}</a> — ${quarters.rows.length} department/job rows (<a href="${names.q}.csv">CSV</a>)</li>
  <li><a href="${names.m}.html">Departments hiring above the mean, ${year}</a> — ${aboveMean.rows.length} departments above
    ${aboveMean.mean === null ? 'a mean of nothing' : `a mean of ${aboveMean.mean.toFixed(1)}`} (mean_over = ${meanOver}) (<a href="${names.m}.csv">CSV</a>)</li>
</ul>
</body></html>
`
  files.push(['index.html', index])
  for (const [name, text] of files) await writeFileAtomically(join(out, name), text)
  return { files: files.map(([name]) => join(out, name)), quarterRows: quarters.rows.length, aboveMeanRows: aboveMean.rows.length }
}
