// Deterministic synthetic data in the historical files' format: 50 departments, 500 jobs,
// N employees over 2019-2023 with ~3.5 % invalid rows of every kind, names that need CSV
// quoting, UTF-8. Also writes employees.valid.csv (only the rows that should go in), the
// input of the COPY baseline.
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'

export const DEPARTMENTS = 50
export const JOBS = 500
export const INVALID_SHARE = 0.035

export interface Generated {
  dir: string
  rows: number
  valid: number
  rejected: number
  validIn2021: number
}

/** mulberry32: the same rows for the same seed, on every machine. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const FIRST = ['Ada', 'Zoë', 'Łukasz', 'Mei', 'Ngozi', 'José', 'Søren', 'Aiyana', 'Hiro', 'Émile', 'Fatima', "O'Neil"]
const LAST = ['Lovelace', 'Núñez', 'Müller', 'Okafor', 'Smith, Jr.', 'van "Dutch" Berg', 'Tanaka', 'Ivanova', 'Dubois', 'Kowalski']
const quote = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s)

async function write(stream: WriteStream, text: string) {
  if (!stream.write(text)) await new Promise<void>((r) => stream.once('drain', () => r()))
}
const close = (stream: WriteStream) =>
  new Promise<void>((resolve, reject) => {
    stream.once('error', reject)
    stream.end(() => resolve())
  })

export async function generate(dir: string, rows: number, seed = 42): Promise<Generated> {
  await mkdir(dir, { recursive: true })
  const rnd = random(seed)
  const pick = <T>(list: T[]) => list[Math.floor(rnd() * list.length)]
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1))

  const departments = createWriteStream(join(dir, 'departments.csv'))
  for (let i = 1; i <= DEPARTMENTS; i++)
    await write(departments, `${i},${quote(i % 7 === 0 ? `Dept ${i}, "Special"` : `Département ${i}`)}\n`)
  await close(departments)
  const jobs = createWriteStream(join(dir, 'jobs.csv'))
  for (let i = 1; i <= JOBS; i++) await write(jobs, `${i},${quote(i % 11 === 0 ? `Engineer, Level ${i}` : `Job ${i} ジョブ`)}\n`)
  await close(jobs)

  const all = createWriteStream(join(dir, 'employees.csv'))
  const valid = createWriteStream(join(dir, 'employees.valid.csv'))
  const start = Date.UTC(2019, 0, 1) / 1000
  const span = Date.UTC(2024, 0, 1) / 1000 - start
  let validCount = 0
  let validIn2021 = 0
  let lastValid: string[] | undefined
  for (let id = 1; id <= rows; id++) {
    const seconds = start + Math.floor(rnd() * span)
    const date = new Date(seconds * 1000).toISOString().replace('.000Z', 'Z')
    const row = [String(id), `${pick(FIRST)} ${pick(LAST)}`, date, String(int(1, DEPARTMENTS)), String(int(1, JOBS))]
    if (rnd() < INVALID_SHARE) {
      switch (int(0, 8)) {
        case 0:
          row[int(1, 4)] = ''
          break // missing:<field>
        case 1:
          row[0] = `E${id}`
          break // not_integer
        case 2:
          row[3] = '0'
          break // out_of_range
        case 3:
          row[2] = date.slice(0, 10)
          break // bad_datetime
        case 4:
          row[3] = String(DEPARTMENTS + int(1, 10))
          break // unknown_reference
        case 5:
          row.push('extra')
          break // wrong_field_count
        case 6:
          if (lastValid) {
            row.splice(0, 5, ...lastValid)
            row[1] = `${row[1]} II`
          } else row[1] = ''
          break // duplicate_id
        case 7:
          row[1] = 'x'.repeat(300)
          break // too_long
        default:
          row[1] = `Bell\u0007 ${row[1]}` // bad_text
      }
      await write(all, row.map(quote).join(',') + '\n')
      continue
    }
    const line = row.map(quote).join(',') + '\n'
    await write(all, line)
    await write(valid, line)
    lastValid = row
    validCount++
    if (date.startsWith('2021')) validIn2021++
  }
  await close(all)
  await close(valid)
  return { dir, rows, valid: validCount, rejected: rows - validCount, validIn2021 }
}
