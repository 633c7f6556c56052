// The HTML around the charts: one page shell (styles for screen and print, a Content Security
// Policy that lets nothing load), the headline numbers, the sortable and filterable table, the
// provenance. Pure string building: every data value passes through escapeHtml.
import { createHash } from 'node:crypto'
import { projectVersion } from '../paths.ts'
import { MEAN_DEFINITIONS, type MeanOver, type Metric } from './data.ts'

export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
export const count = (n: number) => n.toLocaleString('en-US')
/** One decimal, grouped like count(): 1,185.5. */
export const decimal = (n: number) => n.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 })

const STYLE = `
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 72rem; padding: 0 1rem; color: #1b1b1b; }
  h1 { font-size: 1.6rem; margin: .6rem 0 .2rem; } h2 { font-size: 1.2rem; margin: 2rem 0 .4rem; } .sub { color: #555; margin-top: 0; }
  nav { font-size: .9rem; color: #555; } nav a[aria-current] { font-weight: bold; color: inherit; text-decoration: none; }
  .cards { display: flex; flex-wrap: wrap; gap: .8rem; align-items: stretch; flex: 1 1 30rem; }
  .card { border: 1px solid #e3e3e3; border-radius: 6px; padding: .5rem .9rem; flex: 1 1 8rem; }
  .card b { display: block; font-size: 1.6rem; font-variant-numeric: tabular-nums; } .card span { color: #555; font-size: .85rem; }
  .up { color: #2e7d32; } .down { color: #c62828; }
  figure { margin: .8rem 0; overflow-x: auto; } figcaption { color: #555; font-size: .9rem; }
  .headline { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; } .headline figure { margin: 0; flex: 0 0 auto; }
  #years { width: auto; } #years th[scope="row"] { background: none; position: static; }
  .filter { display: flex; gap: 1rem; align-items: center; margin: .5rem 0; } .filter[hidden] { display: none; } .filter input { font: inherit; padding: .3rem .5rem; width: 22rem; max-width: 100%; }
  table.data { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  table.data th, table.data td { border-bottom: 1px solid #e3e3e3; padding: .25rem .6rem; text-align: left; }
  table.data td { overflow-wrap: anywhere; } /* a long name wraps instead of widening the page */
  table.data th { position: sticky; top: 0; background: #f6f6f6; }
  table.data th button { font: inherit; font-weight: bold; border: 0; background: none; padding: 0; cursor: pointer; color: inherit; }
  table.data th button::after { content: " \\2195"; color: #aaa; }
  table.data th[aria-sort="ascending"] button::after { content: " \\25B2"; color: inherit; }
  table.data th[aria-sort="descending"] button::after { content: " \\25BC"; color: inherit; }
  table.data .num { text-align: right; }
  .scroll { max-height: 36rem; overflow: auto; border: 1px solid #e3e3e3; }
  .no-data { border-left: 4px solid #edc948; background: #fdf8e6; padding: .6rem 1rem; }
  dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; font-size: .9rem; }
  dl.prov dt { color: #555; } dl.prov dd { margin: 0; overflow-wrap: anywhere; } pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; font-size: .8rem; white-space: pre-wrap; }
  .print-only { display: none; }
  @page { size: A4; margin: 12mm; }
  @media print {
    body { margin: 0; max-width: none; font-size: 10pt; } h2 { margin-top: 1rem; }
    nav, .filter, details, table.data th button::after { display: none; }
    a { color: inherit; text-decoration: none; } figure, .cards, tr { break-inside: avoid; }
    .scroll { max-height: none; overflow: visible; border: 0; } table.data th { position: static; }
    .long-table .scroll { display: none; } .long-table .print-only { display: block; }
  }`

// Sorting and the filter are conveniences: without script the page shows every row.
const TABLE_SCRIPT = `
const table = document.getElementById('data'), body = table.tBodies[0], rows = [...body.rows]
const keys = rows.map((r) => [...r.cells].map((c) => c.textContent).join('\\t').toLowerCase())
const filter = document.getElementById('filter'), shown = document.getElementById('shown')
filter.closest('.filter').hidden = false
filter.addEventListener('input', () => {
  const q = filter.value.trim().toLowerCase()
  let n = 0
  rows.forEach((r, i) => { r.hidden = q !== '' && !keys[i].includes(q); if (!r.hidden) n++ })
  shown.textContent = q ? n + ' of ' + rows.length + ' rows match' : rows.length + ' rows'
})
table.querySelectorAll('th button').forEach((button) => button.addEventListener('click', () => {
  const th = button.closest('th'), i = th.cellIndex, numeric = th.classList.contains('num')
  const now = th.getAttribute('aria-sort')
  const dir = now === 'descending' ? 'ascending' : now === 'ascending' ? 'descending' : numeric ? 'descending' : 'ascending'
  table.querySelectorAll('th').forEach((h) => h.setAttribute('aria-sort', 'none'))
  th.setAttribute('aria-sort', dir)
  const value = (r) => numeric ? Number(r.cells[i].textContent) : r.cells[i].textContent
  const order = (a, b) => numeric ? value(a) - value(b) : value(a).localeCompare(value(b))
  const sorted = rows.map((r, k) => [r, k]).sort(([a, j], [b, k]) => (dir === 'ascending' ? 1 : -1) * order(a, b) || j - k)
  body.append(...sorted.map(([r]) => r))
}))
`
const scriptHash = `'sha256-${createHash('sha256').update(TABLE_SCRIPT).digest('base64')}'`

/** A whole page. Nothing may load: no fetch, no external style, script only the table's, by hash. */
export function shell(title: string, body: string, options: { script?: boolean } = {}): string {
  const csp = `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src ${options.script ? scriptHash : "'none'"}; base-uri 'none'; form-action 'none'`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}
</style>
</head>
<body>
${body}
${options.script ? `<script>${TABLE_SCRIPT}</script>\n` : ''}</body>
</html>
`
}

export interface Card {
  value: string
  label: string
  tone?: 'up' | 'down'
}
export const cards = (list: Card[]) =>
  `<div class="cards">${list.map((c) => `<div class="card"><b${c.tone ? ` class="${c.tone}"` : ''}>${escapeHtml(c.value)}</b><span>${escapeHtml(c.label)}</span></div>`).join('')}</div>`

/** A section holding charts; the browser test expects an SVG in every one. */
export const chartSection = (id: string, heading: string, inner: string) =>
  `<section class="chart-section" id="${id}">\n<h2>${escapeHtml(heading)}</h2>\n${inner}\n</section>`

export const figure = (svg: string, caption: string) => `<figure class="chart">${svg}<figcaption>${caption}</figcaption></figure>`

/** The rows as a table: numbers sort descending first; a long table is left out of print. */
export function dataTable(rows: object[], columns: string[], heading: string, download: string, filterHint: string): string {
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => typeof (r as Record<string, unknown>)[c] === 'number'))
  const head = columns
    .map(
      (c, i) => `<th scope="col" aria-sort="none"${numeric[i] ? ' class="num"' : ''}><button type="button">${escapeHtml(c)}</button></th>`,
    )
    .join('')
  const body = rows
    .map(
      (r) =>
        `<tr>${columns
          .map((c, i) => {
            const v = (r as Record<string, unknown>)[c]
            return numeric[i] ? `<td class="num">${v}</td>` : `<td>${escapeHtml(String(v))}</td>`
          })
          .join('')}</tr>`,
    )
    .join('\n')
  const long = rows.length > 40
  return `<section id="table" class="${long ? 'long-table' : ''}">
<h2>${escapeHtml(heading)}</h2>
<p>${count(rows.length)} rows — ${download}. Click a column heading to sort; numbers sort largest first.</p>
<div class="filter" hidden><label>Filter rows <input type="search" id="filter" placeholder="${escapeHtml(filterHint)}" autocomplete="off"></label><span id="shown" aria-live="polite">${rows.length} rows</span></div>
<div class="scroll"><table class="data" id="data"><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table></div>
${long ? `<p class="print-only">The ${count(rows.length)} rows are left out of print: see the CSV.</p>` : ''}
</section>`
}

/** Where the numbers came from: enough to reproduce them and to compare two reports. */
export interface Provenance {
  year: number
  generatedAt: Date
  database: string
  meanOver?: MeanOver
}

export function provenance(p: Provenance, metric?: Metric<object>, fingerprint?: string): string {
  return `<section id="provenance">
<h2>Provenance</h2>
<dl class="prov">
  <dt>Year</dt><dd>${p.year} (of the UTC hiring instant)</dd>
  ${p.meanOver ? `<dt>Mean</dt><dd>mean_over = ${p.meanOver}: ${escapeHtml(MEAN_DEFINITIONS[p.meanOver])}</dd>` : ''}
  <dt>Generated</dt><dd><time datetime="${p.generatedAt.toISOString()}">${p.generatedAt.toISOString()}</time> by hirebase ${escapeHtml(projectVersion)}</dd>
  <dt>Database</dt><dd>${escapeHtml(p.database)}</dd>
  ${fingerprint ? `<dt>Fingerprint</dt><dd>${escapeHtml(fingerprint)}</dd>` : ''}
</dl>
${
  metric
    ? `<h3>SQL</h3>
<pre>${escapeHtml(metric.statement)}</pre>
<details><summary>Definition of the report functions</summary><pre>${escapeHtml(metric.definition)}</pre></details>`
    : ''
}
</section>`
}
