// The report files (report.mjs, npm start): for every year with hires, and any year asked for,
// both metrics as HTML and CSV, and index.html linking them all. Loads Plot and jsdom (through
// ./pages.ts): the command line's module, never the API's.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { outputFolder, writeFileAtomically } from '../files.ts'
import { toCsv } from './csv.ts'
import {
  ABOVE_MEAN_COLUMNS,
  departmentHires,
  departmentsAboveMean,
  hiresByQuarter,
  hiringYears,
  QUARTER_COLUMNS,
  type MeanOver,
} from './data.ts'
import { csvName, departmentsAboveMeanPage, hiresByQuarterPage, indexPage, noDataPage, pageName, type YearContext } from './pages.ts'
import type { Queryable } from '../database.ts'

export interface YearFiles {
  year: number
  hires: number
  quarterRows: number
  aboveMeanRows: number
}
export interface ReportFiles {
  files: string[]
  years: YearFiles[]
  yearsWithData: number[]
}

const fingerprint = (csv: string, rows: number) => `${rows} rows, sha256 ${createHash('sha256').update(csv).digest('hex')} (of the CSV)`

/**
 * Writes the reports into `out`: the pages of every year with hires and of `years` (a year
 * without hires gets pages that say so), then index.html.
 */
export async function writeReports(
  sql: Queryable,
  options: { years?: number[]; out: string; meanOver?: MeanOver; database: string; force?: boolean },
): Promise<ReportFiles> {
  const { out } = options
  const meanOver = options.meanOver ?? 'all'
  await outputFolder(out, { force: options.force })
  const generatedAt = new Date()
  // One snapshot for every number on every page.
  const read = async (q: Queryable) => {
    const years = await hiringYears(q)
    const pageYears = [...new Set([...years.map((y) => y.year), ...(options.years ?? [])])].sort((a, b) => a - b)
    const data = []
    for (const year of pageYears) {
      const aboveMean = await departmentsAboveMean(q, year, meanOver)
      const hasData = years.some((y) => y.year === year)
      data.push({ year, quarters: await hiresByQuarter(q, year), aboveMean, all: hasData ? await departmentHires(q, year, meanOver) : [] })
    }
    return { years, pageYears, data }
  }
  const { years, pageYears, data } = 'begin' in sql ? await sql.begin('isolation level repeatable read read only', read) : await read(sql)
  const ctx: YearContext = { years, pageYears, provenance: { year: 0, generatedAt, database: options.database, meanOver } }
  const files: [string, string][] = []
  const written: YearFiles[] = []
  for (const { year, quarters, aboveMean, all } of data) {
    const yearCtx = { ...ctx, provenance: { ...ctx.provenance, year } }
    const qCsv = toCsv(quarters.rows, QUARTER_COLUMNS)
    const mCsv = toCsv(aboveMean.rows, ABOVE_MEAN_COLUMNS)
    const hires = years.find((y) => y.year === year)?.hires ?? 0
    files.push([csvName('hires-by-quarter', year), qCsv], [csvName('departments-above-mean', year), mCsv])
    if (hires === 0) {
      files.push(
        [pageName('hires-by-quarter', year), noDataPage('hires-by-quarter', year, yearCtx)],
        [pageName('departments-above-mean', year), noDataPage('departments-above-mean', year, yearCtx)],
      )
    } else {
      files.push(
        [
          pageName('hires-by-quarter', year),
          hiresByQuarterPage(quarters, year, yearCtx, {
            mean: aboveMean.mean,
            departments: all.length,
            fingerprint: fingerprint(qCsv, quarters.rows.length),
          }),
        ],
        [
          pageName('departments-above-mean', year),
          departmentsAboveMeanPage(aboveMean, all, year, yearCtx, fingerprint(mCsv, aboveMean.rows.length)),
        ],
      )
    }
    written.push({ year, hires, quarterRows: quarters.rows.length, aboveMeanRows: aboveMean.rows.length })
  }
  files.push(['index.html', indexPage(ctx, ctx.provenance)])
  for (const [name, text] of files) await writeFileAtomically(join(out, name), text)
  return { files: files.map(([name]) => join(out, name)), years: written, yearsWithData: years.map((y) => y.year) }
}
