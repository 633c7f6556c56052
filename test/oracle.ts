// A test oracle: the data dictionary's rules (README, docs/data-dictionary.md) written again,
// small and independently, in TypeScript. The product never imports it; the property tests compare the database's
// verdicts with its verdicts on generated rows. Where the two disagree, one of them is
// wrong about the documented rules.

/** A JSON value as generated: numbers keep their exact text (12345678901234567890, 1e3). */
export type Json = null | boolean | string | { num: string } | Json[] | { obj: [string, Json][] }

export const num = (text: string): Json => ({ num: text })
export const obj = (entries: [string, Json][]): Json => ({ obj: entries })
const isNum = (v: Json): v is { num: string } => typeof v === 'object' && v !== null && 'num' in v
const isObj = (v: Json): v is { obj: [string, Json][] } => typeof v === 'object' && v !== null && 'obj' in v

/** JSON text, with every string escaped the way JSON.stringify does it. */
export function toJson(v: Json): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v)
  if (isNum(v)) return v.num
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`
  return `{${v.obj.map(([k, x]) => `${JSON.stringify(k)}:${toJson(x)}`).join(',')}}`
}

export type Kind = 'id' | 'name' | 'datetime'
export interface Field {
  field: string
  kind: Kind
  ref?: 'departments' | 'jobs'
}
export const TABLES: Record<string, Field[]> = {
  departments: [
    { field: 'department_id', kind: 'id' },
    { field: 'department_name', kind: 'name' },
  ],
  jobs: [
    { field: 'job_id', kind: 'id' },
    { field: 'job_name', kind: 'name' },
  ],
  employees: [
    { field: 'employee_id', kind: 'id' },
    { field: 'employee_name', kind: 'name' },
    { field: 'hiring_date', kind: 'datetime' },
    { field: 'department_id', kind: 'id', ref: 'departments' },
    { field: 'job_id', kind: 'id', ref: 'jobs' },
  ],
}

/** "Trimmed" in docs/data-dictionary.md: Unicode White_Space off both ends. */
export const trim = (s: string) => s.replace(/^\p{White_Space}+|\p{White_Space}+$/gu, '')
const BAD_TEXT = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/u
const MAX_ID = 2147483647n

/** A stored value as the oracle sees it: ids as bigint, names as text, instants as epoch microseconds. */
export type Value = bigint | string

type Verdict = { reasons: string[]; value?: Value }

function idVerdict(field: string, v: Json | undefined): Verdict {
  if (v === undefined || v === null) return { reasons: [`missing:${field}`] }
  let digits: bigint | undefined
  if (typeof v === 'string') {
    const t = trim(v)
    if (t === '') return { reasons: [`missing:${field}`] }
    if (/^[0-9]+$/.test(t)) digits = BigInt(t)
  } else if (isNum(v)) {
    // jsonb keeps a number's value and scale: 1e3 is 1000, 1.0 and 15.0e-1 keep a fraction.
    const m = /^(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/.exec(v.num)!
    const frac = m[3] ?? ''
    const exp = Number(m[4] ?? 0)
    if (frac.length - exp <= 0) digits = BigInt(m[1] + m[2] + frac) * 10n ** BigInt(exp - frac.length)
  }
  if (digits === undefined) return { reasons: [`not_integer:${field}`] }
  if (digits < 1n || digits > MAX_ID) return { reasons: [`out_of_range:${field}`] }
  return { reasons: [], value: digits }
}

function nameVerdict(field: string, v: Json | undefined): Verdict {
  if (v === undefined || v === null) return { reasons: [`missing:${field}`] }
  if (typeof v !== 'string') return { reasons: [`bad_text:${field}`] }
  const t = trim(v)
  if (t === '') return { reasons: [`missing:${field}`] }
  const reasons = []
  if ([...t].length > 255) reasons.push(`too_long:${field}`)
  if (BAD_TEXT.test(t)) reasons.push(`bad_text:${field}`)
  return { reasons, value: t }
}

const daysBefore = (y: number, m: number, d: number): bigint => {
  // Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's days_from_civil).
  const yy = m <= 2 ? y - 1 : y
  const era = Math.floor(yy / 400)
  const yoe = yy - era * 400
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return BigInt(era * 146097 + doe - 719468)
}
const daysIn = (y: number, m: number) =>
  [31, (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
export const MIN_INSTANT = daysBefore(1, 1, 1) * 86_400_000_000n
export const MAX_INSTANT = (daysBefore(9999, 12, 31) + 1n) * 86_400_000_000n - 1n

/** Epoch microseconds of an RFC 3339 date-time docs/data-dictionary.md accepts, or undefined. */
export function instantOf(text: string): bigint | undefined {
  const m =
    /^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))$/.exec(text)
  if (!m) return undefined
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number)
  const frac = m[7] ?? ''
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || s > 59) return undefined
  if (frac.length > 9 || /[1-9]/.test(frac.slice(6))) return undefined // finer than a microsecond, or longer than 9 digits
  const oh = Number(m[9] ?? 0)
  const om = Number(m[10] ?? 0)
  if (oh > 23 || om > 59) return undefined
  const offset = BigInt((m[8] === '-' ? -1 : 1) * (oh * 60 + om)) * 60_000_000n
  const micros =
    (daysBefore(y, mo, d) * 86400n + BigInt(h * 3600 + mi * 60 + s)) * 1_000_000n + BigInt(frac.slice(0, 6).padEnd(6, '0')) - offset
  return micros < MIN_INSTANT || micros > MAX_INSTANT ? undefined : micros
}

function datetimeVerdict(field: string, v: Json | undefined): Verdict {
  if (v === undefined || v === null) return { reasons: [`missing:${field}`] }
  if (typeof v !== 'string') return { reasons: [`bad_datetime:${field}`] }
  const t = trim(v)
  if (t === '') return { reasons: [`missing:${field}`] }
  const at = instantOf(t)
  return at === undefined ? { reasons: [`bad_datetime:${field}`] } : { reasons: [], value: at }
}

const VERDICTS = { id: idVerdict, name: nameVerdict, datetime: datetimeVerdict }

/** The existing rows, by table and id, as typed values in field order. */
export type State = Record<string, Map<bigint, Value[]>>

/** One row of a batch: a JSON value (JSON paths), CSV fields, or bytes no path can store. */
export type Row = { json: Json } | { csv: string[] } | { unstorable: 'bad_encoding' | 'unreadable' }

/** The reasons of every row of a batch into `table`, in order, given what is already stored. */
export function judge(table: string, rows: Row[], state: State): string[][] {
  const fields = TABLES[table]
  const firstValid = new Map<bigint, number>()
  return rows.map((row, position) => {
    let values: (Json | undefined)[] | undefined
    const reasons: string[] = []
    if ('unstorable' in row) reasons.push(row.unstorable)
    else if ('csv' in row) {
      if (row.csv.length !== fields.length) reasons.push('wrong_field_count')
      else values = row.csv
    } else if (!isObj(row.json)) reasons.push('not_an_object')
    else {
      // Duplicate keys: the last one wins, as in jsonb.
      const entries = new Map(row.json.obj)
      for (const key of [...entries.keys()].sort()) if (!fields.some((f) => f.field === key)) reasons.push(`unknown_field:${key}`)
      values = fields.map((f) => entries.get(f.field))
    }
    if (!values) return reasons
    const typed = fields.map((f, i) => {
      const verdict = VERDICTS[f.kind](f.field, values![i])
      reasons.push(...verdict.reasons)
      if (f.ref && verdict.value !== undefined && !state[f.ref].has(verdict.value as bigint)) reasons.push(`unknown_reference:${f.field}`)
      return verdict.value
    })
    const key = typed[0] as bigint | undefined
    if (key === undefined) return reasons
    const current = state[table].get(key)
    const same = current !== undefined && typed.every((v, i) => v === current[i])
    const earlier = firstValid.get(key)
    if (reasons.length === 0 && earlier === undefined) firstValid.set(key, position)
    if ((current !== undefined && !same) || (earlier !== undefined && earlier < position)) reasons.push('duplicate_id')
    return reasons
  })
}
