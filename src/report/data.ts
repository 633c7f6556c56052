// The report data: what the database's report functions return, for the API (JSON, CSV) and
// for the HTML pages. No rendering here: the API server imports this module, and must not
// load jsdom or Plot (test/node/report-modules.test.ts checks it).
import type { Queryable } from '../database.ts'

export type MeanOver = 'all' | 'hiring'
export interface QuarterRow {
  department: string
  job: string
  q1: number
  q2: number
  q3: number
  q4: number
}
export interface AboveMeanRow {
  id: number
  department: string
  hired: number
}
export interface DepartmentRow extends AboveMeanRow {
  above_mean: boolean
}
export interface YearRow {
  year: number
  hires: number
  departments: number
  jobs: number
  q1: number
  q2: number
  q3: number
  q4: number
}

export interface Metric<Row> {
  rows: Row[]
  /** The statement run, with its parameters written in, for the page's provenance. */
  statement: string
  /** The function's definition, as the database holds it. */
  definition: string
}

/** The last quarter of a year with hires (4 for a whole year): a year in progress is compared
 *  with the same quarters of the year before, not with a whole year. */
export function lastQuarter(y: YearRow): number {
  const quarters = [y.q1, y.q2, y.q3, y.q4]
  let n = 4
  while (n > 1 && quarters[n - 1] === 0) n--
  return n
}

export const QUARTER_COLUMNS = ['department', 'job', 'q1', 'q2', 'q3', 'q4']
export const ABOVE_MEAN_COLUMNS = ['id', 'department', 'hired']

export const MEAN_DEFINITIONS: Record<MeanOver, string> = {
  all: "the year's hires divided by the number of departments in the departments table (departments without hires count as zero)",
  hiring: "the year's hires divided by the number of departments that hired someone that year",
}

const literal = (v: string | number) => (typeof v === 'number' ? String(v) : `'${v.replaceAll("'", "''")}'`)

export async function hiresByQuarter(sql: Queryable, year: number): Promise<Metric<QuarterRow>> {
  const rows = await sql<QuarterRow[]>`select * from report.hires_by_quarter(${year})`
  return {
    rows: [...rows],
    statement: `select * from report.hires_by_quarter(${literal(year)});`,
    definition: await definitionOf(sql, 'report.hires_by_quarter(integer)'),
  }
}

export async function departmentsAboveMean(
  sql: Queryable,
  year: number,
  meanOver: MeanOver,
): Promise<Metric<AboveMeanRow> & { mean: number | null }> {
  const [{ mean }] = await sql<{ mean: string | null }[]>`select report.hiring_mean(${year}, ${meanOver}) as mean`
  const rows = await sql<AboveMeanRow[]>`select * from report.departments_above_mean(${year}, mean_over => ${meanOver})`
  return {
    rows: [...rows],
    mean: mean === null ? null : Number(mean),
    statement:
      `select * from report.departments_above_mean(${literal(year)}, mean_over => ${literal(meanOver)});\n` +
      `select report.hiring_mean(${literal(year)}, ${literal(meanOver)});  -- the mean drawn as a rule`,
    definition: [
      await definitionOf(sql, 'report.departments_above_mean(integer, text)'),
      await definitionOf(sql, 'report.department_hires(integer, text)'),
      await definitionOf(sql, 'report.hiring_mean(integer, text)'),
    ].join('\n'),
  }
}

/** Every department with its hires in the year and whether that is above the mean (for context). */
export async function departmentHires(sql: Queryable, year: number, meanOver: MeanOver): Promise<DepartmentRow[]> {
  return [...(await sql<DepartmentRow[]>`select * from report.department_hires(${year}, mean_over => ${meanOver})`)]
}

/** The years that have hires, oldest first, with their headline numbers. */
export async function hiringYears(sql: Queryable): Promise<YearRow[]> {
  return [...(await sql<YearRow[]>`select * from report.hiring_years()`)]
}

async function definitionOf(sql: Queryable, signature: string): Promise<string> {
  const [{ def }] = await sql<{ def: string }[]>`select pg_get_functiondef(${signature}::regprocedure) as def`
  return def
}
