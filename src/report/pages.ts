// The report pages of a year (hires by quarter, departments above the mean), the page of a
// year without hires, and index.html: data from ./data.ts, charts from ./charts.ts, HTML
// from ./html.ts.
import { aboveMeanChart, departmentMultiples, quarterHeatmap, yearsChart, type QuarterCounts } from './charts.ts'
import {
  ABOVE_MEAN_COLUMNS,
  lastQuarter,
  MEAN_DEFINITIONS,
  QUARTER_COLUMNS,
  type AboveMeanRow,
  type DepartmentRow,
  type Metric,
  type QuarterRow,
  type YearRow,
} from './data.ts'
import {
  cards,
  chartSection,
  count,
  dataTable,
  decimal,
  escapeHtml,
  figure,
  provenance,
  shell,
  type Card,
  type Provenance,
} from './html.ts'

export type Kind = 'hires-by-quarter' | 'departments-above-mean'
export const pageName = (kind: Kind, year: number) => `${kind}-${year}.html`
export const csvName = (kind: Kind, year: number) => `${kind}-${year}.csv`
const TITLES: Record<Kind, string> = {
  'hires-by-quarter': 'Hires by quarter',
  'departments-above-mean': 'Departments hiring above the mean',
}
const TOP_JOBS = 15

/** What every page of a year knows: the years with hires, and the years that have pages. */
export interface YearContext {
  years: YearRow[]
  pageYears: number[]
  provenance: Provenance & { meanOver: 'all' | 'hiring' }
}

function nav(kind: Kind, year: number, ctx: YearContext): string {
  const link = (href: string, text: string, current: boolean) => `<a href="${href}"${current ? ' aria-current="page"' : ''}>${text}</a>`
  const kinds = (Object.keys(TITLES) as Kind[]).map((k) => link(pageName(k, year), TITLES[k], k === kind)).join(' · ')
  const years = ctx.pageYears.map((y) => link(pageName(kind, y), String(y), y === year)).join(' ')
  return `<nav>${link('index.html', 'All reports', false)} | ${year}: ${kinds} | Year: ${years}</nav>`
}

const meanLabel = (mean: number | null, ctx: YearContext) =>
  `mean ${mean === null ? 'none' : decimal(mean)} (${ctx.provenance.meanOver === 'all' ? 'over all departments' : 'over hiring departments'})`

const upTo = (n: number) => (n === 1 ? 'Q1' : `Q1–Q${n}`)

/** The headline numbers of the year, and its hires beside the other years'. */
function headline(year: number, ctx: YearContext, mean: number | null, departments: number): string {
  const now = ctx.years.find((y) => y.year === year)!
  const before = ctx.years.find((y) => y.year === year - 1)
  const n = lastQuarter(now)
  const earlier = before && [before.q1, before.q2, before.q3, before.q4].slice(0, n).reduce((a, b) => a + b, 0)
  const period = n === 4 ? `${year - 1}` : `${upTo(n)} ${year - 1}`
  const change: Card = earlier
    ? {
        value: `${now.hires >= earlier ? '+' : '−'}${((Math.abs(now.hires - earlier) / earlier) * 100).toFixed(1)}%`,
        label: `vs ${period} (${count(earlier)} hires)`,
        tone: now.hires >= earlier ? 'up' : 'down',
      }
    : { value: '—', label: `no hires in ${period} to compare with` }
  return chartSection(
    'headline',
    'Headline numbers',
    `<div class="headline">${cards([
      { value: count(now.hires), label: `hires in ${year}${n === 4 ? '' : ` (none after Q${n})`}` },
      { value: count(now.departments), label: `departments hiring (of ${count(departments)})` },
      { value: count(now.jobs), label: 'jobs hiring' },
      {
        value: mean === null ? '—' : decimal(mean),
        label: `mean hires per department (${ctx.provenance.meanOver === 'all' ? 'over all of them' : 'over those hiring'})`,
      },
      change,
    ])}
${figure(yearsChart(ctx.years, year), `Hires per year with data; ${year} in blue.`)}</div>`,
  )
}

function yearPage(kind: Kind, year: number, ctx: YearContext, intro: string, sections: string[], extra: { script: boolean }): string {
  const title = `${TITLES[kind]}, ${year}`
  return shell(title, `${nav(kind, year, ctx)}\n<h1>${escapeHtml(title)}</h1>\n<p class="sub">${intro}</p>\n${sections.join('\n')}`, extra)
}

const sumQuarters = (rows: QuarterRow[], key: (r: QuarterRow) => string): QuarterCounts[] => {
  const by = new Map<string, QuarterCounts>()
  for (const r of rows) {
    const it = by.get(key(r)) ?? { name: key(r), quarters: [0, 0, 0, 0] }
    it.quarters = [it.quarters[0] + r.q1, it.quarters[1] + r.q2, it.quarters[2] + r.q3, it.quarters[3] + r.q4]
    by.set(key(r), it)
  }
  return [...by.values()]
}
const total = (c: QuarterCounts) => c.quarters[0] + c.quarters[1] + c.quarters[2] + c.quarters[3]

export function hiresByQuarterPage(
  metric: Metric<QuarterRow>,
  year: number,
  ctx: YearContext,
  extra: { mean: number | null; departments: number; fingerprint: string },
): string {
  const departments = sumQuarters(metric.rows, (r) => r.department)
  const jobs = sumQuarters(metric.rows, (r) => r.job)
  const top = [...jobs].sort((a, b) => total(b) - total(a) || a.name.localeCompare(b.name)).slice(0, TOP_JOBS)
  const hires = departments.reduce((n, d) => n + total(d), 0)
  const rows = metric.rows.map((r) => ({ ...r, total: r.q1 + r.q2 + r.q3 + r.q4 }))
  const last = lastQuarter(ctx.years.find((y) => y.year === year)!)
  const early = last === 4 ? '' : ` The database has no hires after Q${last} ${year}.`
  return yearPage(
    'hires-by-quarter',
    year,
    ctx,
    `${count(hires)} hires in ${year} across ${departments.length} departments and ${count(metric.rows.length)} department/job pairs, by quarter of the UTC hiring instant.`,
    [
      headline(year, ctx, extra.mean, extra.departments),
      chartSection(
        'heatmap',
        'Departments by quarter',
        figure(
          quarterHeatmap(departments, year, { columnTotals: true, totalLabel: 'All departments' }),
          `Each cell: the department's hires in that quarter of ${year} (UTC); the grey cells are totals. Hover for details.${early}`,
        ),
      ),
      chartSection(
        'top-jobs',
        `The ${top.length} jobs hired most, by quarter`,
        figure(
          quarterHeatmap(top, year, { columnTotals: false, totalLabel: 'Total' }),
          `Of ${count(jobs.length)} jobs hired in ${year}, in every department together; ties by name. The full list is in the table below.`,
        ),
      ),
      chartSection(
        'multiples',
        'Each department by quarter',
        figure(
          departmentMultiples(departments),
          'One chart per department, all on the same scale; the number after the name is its hires in the year.',
        ),
      ),
      dataTable(
        rows,
        [...QUARTER_COLUMNS, 'total'],
        'Every department and job',
        `<a href="${csvName('hires-by-quarter', year)}">download CSV</a>`,
        'part of a department or job name',
      ),
      provenance(ctx.provenance, metric, extra.fingerprint),
    ],
    { script: true },
  )
}

export function departmentsAboveMeanPage(
  metric: Metric<AboveMeanRow> & { mean: number | null },
  all: DepartmentRow[],
  year: number,
  ctx: YearContext,
  fingerprint: string,
): string {
  const label = meanLabel(metric.mean, ctx)
  const meanOver = ctx.provenance.meanOver
  return yearPage(
    'departments-above-mean',
    year,
    ctx,
    `${metric.rows.length} of ${all.length} departments hired more than the ${escapeHtml(label)} in ${year}. ` +
      `The mean is ${escapeHtml(MEAN_DEFINITIONS[meanOver])}.`,
    [
      headline(year, ctx, metric.mean, all.length),
      chartSection(
        'above-mean',
        'Every department against the mean',
        figure(
          aboveMeanChart(all, metric.mean, label),
          `Blue: the ${metric.rows.length} departments above the mean; grey: the others. The dashed line is the ${escapeHtml(label)}.`,
        ),
      ),
      dataTable(
        metric.rows,
        ABOVE_MEAN_COLUMNS,
        'Departments above the mean',
        `<a href="${csvName('departments-above-mean', year)}">download CSV</a>`,
        'part of a department name',
      ),
      provenance(ctx.provenance, metric, fingerprint),
    ],
    { script: true },
  )
}

const yearList = (kind: Kind, years: YearRow[]) =>
  years.map((y) => `<li><a href="${pageName(kind, y.year)}">${y.year}</a>: ${count(y.hires)} hires</li>`).join('')

/** A year without hires: says so, and links the years that have some. */
export function noDataPage(kind: Kind, year: number, ctx: YearContext): string {
  const title = `${TITLES[kind]}, ${year}`
  return shell(
    title,
    `${nav(kind, year, ctx)}
<h1>${escapeHtml(title)}</h1>
<section id="no-data" class="no-data">
<h2>No hires in ${year}</h2>
${
  ctx.years.length
    ? `<p>The database has no employee hired in ${year} (UTC), so there is nothing to chart. Years with data:</p><ul>${yearList(kind, ctx.years)}</ul>`
    : '<p>The database has no hires in any year yet: load data first (<code>npx zx scripts/load.mjs</code>).</p>'
}
</section>
${provenance(ctx.provenance)}`,
  )
}

/** index.html: every year in the database with its numbers and pages, and any page of a year without data. */
export function indexPage(ctx: YearContext, p: Provenance): string {
  const links = (y: number) =>
    (Object.keys(TITLES) as Kind[])
      .map((k) => `<a href="${pageName(k, y)}">${TITLES[k]}</a> (<a href="${csvName(k, y)}">CSV</a>)`)
      .join('<br>')
  const rows = ctx.pageYears
    .map((y) => {
      const d = ctx.years.find((r) => r.year === y)
      return `<tr><th scope="row">${y}</th>${d ? `<td class="num">${count(d.hires)}</td><td class="num">${d.departments}</td><td class="num">${count(d.jobs)}</td>` : '<td colspan="3">no hires</td>'}<td>${links(y)}</td></tr>`
    })
    .join('\n')
  return shell(
    'hirebase reports',
    `<h1>hirebase reports</h1>
<p class="sub">Generated <time datetime="${p.generatedAt.toISOString()}">${p.generatedAt.toISOString()}</time> from ${escapeHtml(p.database)}. ${
      ctx.years.length ? `${ctx.years.length} year${ctx.years.length === 1 ? '' : 's'} with hires.` : 'The database has no hires yet.'
    }</p>
${ctx.years.length ? figure(yearsChart(ctx.years), 'Hires per year.') : ''}
<table class="data" id="years"><thead><tr><th scope="col">Year</th><th scope="col" class="num">Hires</th><th scope="col" class="num">Departments hiring</th><th scope="col" class="num">Jobs hiring</th><th scope="col">Reports</th></tr></thead><tbody>
${rows}
</tbody></table>`,
  )
}
