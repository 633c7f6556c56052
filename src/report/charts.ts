// The reports' charts: Observable Plot drawn on the server through jsdom, returned as inline
// SVG markup, so a page needs no script and no network to show them. Only the command line
// (report.mjs, npm start) loads this module; the API never does.
import * as Plot from '@observablehq/plot'
import { JSDOM } from 'jsdom'
import { lastQuarter, type DepartmentRow, type YearRow } from './data.ts'

// Data never chooses a colour: Plot reads a channel whose values all look like colours (say a
// department named url(https://...)) as literal fills, which a browser would fetch. Every
// colour below is a constant, a function of a number, or bound to a scale with its own range.
const BLUE = '#4e79a7'
const GREY = '#c9c9c9'
const RED = '#d03b3b'
const QUARTERS = ['Q1', 'Q2', 'Q3', 'Q4'] as const
/** The key of a totals row: PostgreSQL text cannot hold NUL, so no name can be equal to it. */
const TOTAL = '\u0000total'

/** Names on a y axis are cut to fit the margin; the full name is the tick's tooltip. */
const nameAxis = (totalLabel = 'Total') =>
  Plot.axisY({
    label: null,
    textOverflow: 'ellipsis-end',
    lineWidth: 17,
    tickSize: 0,
    tickFormat: (d: string) => (d === TOTAL ? totalLabel : d),
  })

function svgOf(options: Plot.PlotOptions): string {
  const { window } = new JSDOM('')
  const chart = Plot.plot({ ...options, document: window.document }) as unknown as Element
  for (const svg of [chart, ...chart.querySelectorAll('svg')].filter((e) => e.tagName.toLowerCase() === 'svg')) {
    svg.setAttribute('xmlns', 'http://www.w3.org/2000/svg')
  }
  return chart.outerHTML
}

const sum = (values: number[]) => values.reduce((n, v) => n + v, 0)

/** Hires per year, the report's year (if given) in colour; a year without hires after some quarter says so. */
export function yearsChart(years: YearRow[], year?: number): string {
  const label = (d: YearRow) => {
    const last = lastQuarter(d)
    return last === 4 ? String(d.year) : `${d.year} (to Q${last})`
  }
  return svgOf({
    width: 96 + 64 * years.length,
    height: 150,
    marginTop: 18,
    marginLeft: 56, // room for "60,000" (a large load): 40 cut it to "0,000"
    x: { label: null, type: 'band', domain: years.map(label) },
    y: { label: 'Hires', grid: true, ticks: 3 },
    marks: [
      Plot.barY(years, {
        x: label,
        y: 'hires',
        fill: (d: YearRow) => (year === undefined || d.year === year ? BLUE : GREY),
        title: (d: YearRow) => `${label(d)}: ${d.hires} hires`,
      }),
      Plot.text(years, { x: label, y: 'hires', text: 'hires', dy: -7 }),
      Plot.ruleY([0]),
    ],
  })
}

/** Every department's hires, those above the mean in colour, the mean as a dashed rule. */
export function aboveMeanChart(rows: DepartmentRow[], mean: number | null, meanLabel: string): string {
  const max = Math.max(mean ?? 0, ...rows.map((r) => r.hired), 1)
  const status = (r: DepartmentRow) => (r.above_mean ? 'Above the mean' : 'At or below the mean')
  return svgOf({
    width: 860,
    height: 70 + 26 * rows.length,
    marginLeft: 190,
    marginRight: 50,
    marginTop: 30,
    x: { label: 'Hires in the year →', grid: true, domain: [0, max * 1.08] },
    y: { label: null, domain: rows.map((r) => r.department) },
    color: { type: 'ordinal', domain: ['Above the mean', 'At or below the mean'], range: [BLUE, GREY], legend: true },
    marks: [
      nameAxis(),
      Plot.barX(rows, {
        x: 'hired',
        y: 'department',
        fill: { value: status, scale: 'color' },
        title: (r: DepartmentRow) => `${r.department}: ${r.hired} hires (${status(r).toLowerCase()})`,
      }),
      ...(mean === null
        ? []
        : [
            Plot.ruleX([mean], { stroke: RED, strokeWidth: 2, strokeDasharray: '5,3' }),
            Plot.text([mean], {
              x: (d: number) => d,
              frameAnchor: 'top',
              dy: -6,
              text: () => meanLabel,
              fill: RED,
              textAnchor: 'middle',
              lineAnchor: 'bottom',
            }),
          ]),
      // Over the mean's rule, with a white halo: a department near the mean keeps its number readable.
      Plot.text(rows, {
        x: 'hired',
        y: 'department',
        text: 'hired',
        dx: 4,
        textAnchor: 'start',
        stroke: 'white',
        strokeWidth: 3,
        fill: 'black',
      }),
      Plot.ruleX([0]),
    ],
  })
}

export interface QuarterCounts {
  name: string
  quarters: [number, number, number, number]
}

/** The relative luminance (WCAG 2) of an rgb(r, g, b) colour: black text above about 0.18, white below. */
function luminance(rgb: string): number {
  const [r, g, b] = (rgb.match(/\d+/g) ?? ['0', '0', '0']).map((v) => {
    const c = Number(v) / 255
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4
  })
  return 0.2126 * r + 0.7152 * g + 0.0722 * b
}

/** Departments (or jobs) by quarter as a heatmap, with a total per row and, if asked, per quarter. */
export function quarterHeatmap(items: QuarterCounts[], year: number, options: { columnTotals: boolean; totalLabel: string }): string {
  type Cell = { y: string; x: string; hires: number; total: boolean }
  const cells: Cell[] = items.flatMap((it) => [
    ...QUARTERS.map((x, i) => ({ y: it.name, x, hires: it.quarters[i], total: false })),
    { y: it.name, x: 'Total', hires: sum(it.quarters), total: true },
  ])
  if (options.columnTotals) {
    const columns = QUARTERS.map((_, i) => sum(items.map((it) => it.quarters[i])))
    cells.push(...QUARTERS.map((x, i) => ({ y: TOTAL, x, hires: columns[i], total: true })), {
      y: TOTAL,
      x: 'Total',
      hires: sum(columns),
      total: true,
    })
  }
  const inner = cells.filter((c) => !c.total)
  // The colours span the counts there are (not 0 to the largest: 255-371 in every cell would all
  // be one mid blue), and each label is black or white, whichever contrasts more with its cell's
  // colour (WCAG contrast >= 4.6 across the scheme). A threshold at 60 % of the largest count put
  // white on pale blue when all counts were close.
  const lowest = Math.min(...inner.map((c) => c.hires))
  const highest = Math.max(...inner.map((c) => c.hires))
  const domain = highest > lowest ? [lowest, highest] : [0, Math.max(highest, 1)]
  const color = Plot.scale({ color: { type: 'linear', scheme: 'blues', domain } })
  const label = (c: Cell) => (luminance(String(color.apply(c.hires))) < 0.18 ? 'white' : 'black')
  const name = (c: Cell) => (c.y === TOTAL ? options.totalLabel : c.y)
  return svgOf({
    width: 720,
    height: 50 + 26 * (items.length + (options.columnTotals ? 1 : 0)),
    marginLeft: 190,
    x: { label: null, domain: [...QUARTERS, 'Total'], axis: 'top' },
    y: { label: null, domain: [...items.map((it) => it.name), ...(options.columnTotals ? [TOTAL] : [])] },
    color: { type: 'linear', scheme: 'blues', domain, label: 'Hires' }, // no legend: it needs canvas, and every cell is labelled
    marks: [
      nameAxis(options.totalLabel),
      Plot.cell(inner, {
        x: 'x',
        y: 'y',
        fill: { value: 'hires', scale: 'color' },
        inset: 0.5,
        title: (c: Cell) => `${name(c)}, ${c.x} ${year}: ${c.hires} hires`,
      }),
      Plot.cell(
        cells.filter((c) => c.total),
        {
          x: 'x',
          y: 'y',
          fill: '#efefef',
          inset: 0.5,
          title: (c: Cell) => `${name(c)}, ${c.x === 'Total' ? 'all of' : c.x} ${year}: ${c.hires} hires`,
        },
      ),
      Plot.text(inner, { x: 'x', y: 'y', text: 'hires', fill: label }),
      Plot.text(
        cells.filter((c) => c.total),
        { x: 'x', y: 'y', text: 'hires', fontWeight: 'bold' },
      ),
    ],
  })
}

/** One small bar chart per department, hires by quarter, all on the same scale. */
export function departmentMultiples(items: QuarterCounts[], columns = 4): string {
  const bars = items.flatMap((it, i) => QUARTERS.map((quarter, q) => ({ i, name: it.name, quarter, hires: it.quarters[q] })))
  const panels = items.map((it, i) => ({ i, name: it.name, total: sum(it.quarters) }))
  const fx = (d: { i: number }) => d.i % columns
  const fy = (d: { i: number }) => Math.floor(d.i / columns)
  const rows = Math.ceil(items.length / columns)
  return svgOf({
    width: 960,
    height: 40 + 120 * rows,
    marginTop: 10,
    marginLeft: 40,
    fx: { axis: null, domain: [...Array(columns).keys()], padding: 0.12 },
    fy: { axis: null, domain: [...Array(rows).keys()], padding: 0.28 },
    x: { label: null, domain: QUARTERS },
    y: { label: null, grid: true, ticks: 3, insetTop: 24 },
    marks: [
      Plot.barY(bars, {
        fx,
        fy,
        x: 'quarter',
        y: 'hires',
        fill: BLUE,
        title: (d: (typeof bars)[0]) => `${d.name}, ${d.quarter}: ${d.hires} hires`,
      }),
      Plot.text(bars, { fx, fy, x: 'quarter', y: 'hires', text: 'hires', dy: -6, fontSize: 9 }),
      Plot.text(panels, {
        fx,
        fy,
        frameAnchor: 'top-left',
        text: (d: (typeof panels)[0]) => `${d.name} (${d.total})`,
        fontWeight: 'bold',
        lineWidth: 19,
        textOverflow: 'ellipsis-end',
      }),
      Plot.axisX({ anchor: 'bottom', tickSize: 0 }),
      Plot.ruleY([0]),
    ],
  })
}
