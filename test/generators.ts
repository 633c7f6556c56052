// fast-check arbitraries for the property tests: valid rows over the whole range the data
// dictionary allows (README, docs/data-dictionary.md), mutations of them that break one rule or several, and rows no path can store.
import fc from 'fast-check'
import { instantOf, num, obj, TABLES, trim, type Json, type Row } from './oracle.ts'

/** Every character RFC 3339 trimming removes: Unicode White_Space. */
export const WHITE_SPACE = [
  '\t',
  '\n',
  '\u000b',
  '\f',
  '\r',
  ' ',
  '\u0085',
  '\u00a0',
  '\u1680',
  '\u2000',
  '\u2005',
  '\u200a',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u205f',
  '\u3000',
]
const BAD_CHARS = ['\u0001', '\u001f', '\u007f', '\u0080', '\u009f', '\u2028', '\u2029', '\u202a', '\u202e', '\u2066', '\u2069', '\t', '\n']
const ASCII = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))

const padding = fc.string({ unit: fc.constantFrom(...WHITE_SPACE), maxLength: 3 })
/** Text of any Unicode scalar values but NUL (a NUL is a bad_encoding row, generated apart). */
const anyText = (minLength: number, maxLength: number) =>
  fc.string({ unit: 'binary', minLength, maxLength }).map((s) => s.replaceAll('\0', '0'))
const asciiEnd = fc.constantFrom(...ASCII)

/** A valid name: whole-Unicode middle, any ASCII at both ends, lengths up to and near 255, padded. */
export const validName = fc
  .tuple(
    padding,
    asciiEnd,
    fc.oneof({ arbitrary: anyText(0, 20), weight: 9 }, { arbitrary: anyText(240, 253), weight: 1 }),
    asciiEnd,
    padding,
  )
  .map((parts) => parts.join(''))
  .filter((s) => {
    const t = trim(s)
    return t !== '' && [...t].length <= 255 && !/[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/u.test(t)
  })

/** A valid id as JSON: a number, or a string of digits with leading zeros and padding. */
export const validId = (min = 1, max = 2147483647): fc.Arbitrary<Json> =>
  fc.integer({ min, max }).chain((n) =>
    fc.oneof(
      fc.constant(num(String(n))),
      fc.tuple(padding, fc.nat(3), padding).map(([a, zeros, b]) => `${a}${'0'.repeat(zeros)}${n}${b}`),
    ),
  )

const two = (n: number) => String(n).padStart(2, '0')
/** A valid RFC 3339 date-time: years 0001-9999, every offset to +-23:59, 0-6 fraction digits. */
export const validDatetime = fc
  .record({
    year: fc.oneof(fc.integer({ min: 1, max: 9999 }), fc.constantFrom(1, 2, 1900, 2000, 2021, 2024, 9998, 9999)),
    month: fc.integer({ min: 1, max: 12 }),
    day: fc.integer({ min: 1, max: 31 }),
    hour: fc.integer({ min: 0, max: 23 }),
    minute: fc.integer({ min: 0, max: 59 }),
    second: fc.integer({ min: 0, max: 59 }),
    fraction: fc.oneof(fc.constant(''), fc.stringMatching(/^\.[0-9]{1,6}$/), fc.stringMatching(/^\.[0-9]{1,6}0{1,3}$/)),
    zone: fc.oneof(
      fc.constantFrom('Z', 'z'),
      fc
        .tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
        .map(([sign, h, m]) => `${sign}${two(h)}:${two(m)}`),
    ),
    t: fc.constantFrom('T', 't'),
  })
  .map(
    (d) =>
      `${String(d.year).padStart(4, '0')}-${two(d.month)}-${two(d.day)}${d.t}${two(d.hour)}:${two(d.minute)}:${two(d.second)}${d.fraction}${d.zone}`,
  )
  .filter((s) => instantOf(s) !== undefined)

/** Ids that exist in the seeded departments and jobs tables (see seedState). */
export const PARENTS = 10
const refId = validId(1, PARENTS)

const validValue = (kind: string, field: string): fc.Arbitrary<Json> =>
  kind === 'name'
    ? validName
    : kind === 'datetime'
      ? validDatetime
      : field.endsWith('department_id') || field === 'job_id'
        ? refId
        : validId()

/** A valid row of `table`, its key from `keys` (small pools make duplicates happen). */
export function validRow(table: string, keys: fc.Arbitrary<number>): fc.Arbitrary<Json> {
  const fields = TABLES[table]
  const key = keys.chain((n) =>
    fc.oneof(
      fc.constant(num(String(n))),
      fc.constant(String(n)),
      padding.map((p) => `${p}0${n}`),
    ),
  )
  return fc
    .tuple(key, ...fields.slice(1).map((f) => validValue(f.kind, table === 'employees' ? f.field : 'x')))
    .map((values) => obj(fields.map((f, i) => [f.field, values[i]])))
}

const notInteger: Json[] = [num('1.5'), num('1.0'), num('15e-1'), '1.5', 'abc', '12a', '1e3', '\u0661\u0662', '+5', '-', true, [], obj([])]
const outOfRange: Json[] = [
  num('0'),
  num('-7'),
  num('-0'),
  num('2147483648'),
  num('12345678901234567890'),
  '0',
  '2147483648',
  '000',
  num('1e10'),
  num('1e3'),
  '9'.repeat(140_000),
  `${'0'.repeat(20)}2147483648`,
  `${'0'.repeat(20)}7`,
]
const badDatetimes = [
  '2021-02-30T00:00:00Z',
  '2021-06-01T24:00:00Z',
  '2021-06-01T00:00:60Z',
  '2021-06-01T00:00:00',
  '2021-06-01',
  '2021-06-01 00:00:00Z',
  '2021-06-01T00:00Z',
  '2021-06-01T00:00:00+24:00',
  '2021-06-01T00:00:00+05',
  '2021-06-01T00:00:00.1234567Z',
  '2021-06-01T00:00:00.1234560000Z',
  `2021-06-01T00:00:00.${'0'.repeat(140)}Z`,
  '0000-01-01T00:00:00Z',
  '0001-01-01T00:30:00+01:00',
  '9999-12-31T23:59:59-00:01',
  '2021-13-01T00:00:00Z',
  '21-06-01T00:00:00Z',
  '2021-06-01T00:00:00.Z',
  '2100-02-29T00:00:00Z',
]

/** A mutation of a field's value: wrong type, wrong form, blank, control characters, too long. */
function mutatedValue(kind: string): fc.Arbitrary<Json | undefined> {
  const common: fc.Arbitrary<Json | undefined>[] = [
    fc.constant(undefined),
    fc.constant(null),
    padding,
    fc.constantFrom<Json>(true, [], obj([['a', '1']]), [num('1')]),
  ]
  if (kind === 'id') return fc.oneof(...common, fc.constantFrom<Json>(...notInteger, ...outOfRange), anyText(0, 5))
  if (kind === 'datetime')
    return fc.oneof(...common, fc.constantFrom<Json>(...badDatetimes, num('20210601')), anyText(0, 25), validDatetime)
  return fc.oneof(
    ...common,
    fc.constant(num('42')),
    fc.tuple(validName, fc.constantFrom(...BAD_CHARS), validName).map(([a, c, b]) => `${trim(a)}${c}${trim(b)}`),
    fc.tuple(asciiEnd, anyText(256, 300), asciiEnd).map((p) => p.join('')),
    anyText(0, 8),
  )
}

/** A valid row with one to three fields mutated, maybe an unknown field, maybe not an object. */
export function mutatedRow(table: string, keys: fc.Arbitrary<number>): fc.Arbitrary<Json> {
  const fields = TABLES[table]
  return fc
    .tuple(
      validRow(table, keys),
      fc.uniqueArray(fc.nat(fields.length - 1), { minLength: 1, maxLength: 3 }),
      fc.tuple(...fields.map((f) => mutatedValue(f.kind))),
      fc.option(fc.constantFrom('extra', 'Job_Id', 'employee id', 'department_name'), { freq: 4 }),
      fc.option(fc.constantFrom<Json>([], 'a row', num('7'), null, [obj([])]), { freq: 12 }),
      fc.option(fc.constantFrom(999_999, PARENTS + 1), { freq: 4 }),
    )
    .map(([row, which, values, extra, replacement, unknownParent]) => {
      if (replacement !== null) return replacement
      const entries = new Map((row as { obj: [string, Json][] }).obj)
      for (const i of which) {
        if (values[i] === undefined) entries.delete(fields[i].field)
        else entries.set(fields[i].field, values[i] as Json)
      }
      if (unknownParent !== null && table === 'employees') entries.set(fields[3 + (unknownParent % 2)].field, num(String(unknownParent)))
      if (extra !== null) entries.set(extra, 'x')
      return obj([...entries])
    })
}

/** A batch of `size` rows: half valid, half mutated, ids from a pool small enough to collide. */
export const batch = (table: string, minLength: number, maxLength: number, pool: number) => {
  const keys = fc.integer({ min: 1, max: pool })
  return fc.array(fc.oneof(validRow(table, keys), mutatedRow(table, keys)), { minLength, maxLength, size: 'max' })
}

/** A JSON row as the CSV fields that say the same, when there is such a record. */
export function asCsv(table: string, row: Json): string[] | undefined {
  const fields = TABLES[table]
  if (typeof row !== 'object' || row === null || !('obj' in row)) return undefined
  const entries = new Map(row.obj)
  if ([...entries.keys()].some((k) => !fields.some((f) => f.field === k))) return [...fields.map(() => ''), 'extra'] // a field too many
  const out: string[] = []
  for (const f of fields) {
    const v = entries.get(f.field)
    if (v === undefined || v === null) out.push('')
    else if (typeof v === 'string') out.push(v)
    else if (typeof v === 'object' && 'num' in v) out.push(v.num)
    else return out // a field too few
  }
  return out
}

/** Rows no path can store as received, and rows PostgreSQL cannot read: their JSON text, or raw bytes. */
export const hostileRow: fc.Arbitrary<{ text: Buffer; expect: Row }> = fc.oneof(
  fc.constant({ text: Buffer.from('{"job_id": 5, "job_name": "a\\u0000b"}'), expect: { unstorable: 'bad_encoding' } as Row }),
  fc.constant({ text: Buffer.from('{"job_id": 5, "job_name": "\\udc00 lone"}'), expect: { unstorable: 'bad_encoding' } as Row }),
  fc.constant({ text: Buffer.from('{"job_id": 1e200000, "job_name": "x"}'), expect: { unstorable: 'unreadable' } as Row }),
  fc.constant({
    text: Buffer.concat([Buffer.from('{"job_id": 5, "job_name": "Caf'), Buffer.from([0xe9]), Buffer.from('"}')]),
    expect: { unstorable: 'bad_encoding' } as Row,
  }),
  fc.constant({ text: Buffer.from('{"job_id": 5, "job_name": "raw\0nul"}'), expect: { unstorable: 'bad_encoding' } as Row }),
  fc.integer({ min: 1, max: 6000 }).map((depth) => ({
    text: Buffer.from(`{"job_id": 5, "job_name": ${'['.repeat(depth)}${']'.repeat(depth)}}`),
    expect: {
      json: obj([
        ['job_id', num('5')],
        ['job_name', []],
      ]),
    } as Row,
  })),
  fc.uint8Array({ minLength: 1, maxLength: 12 }).map((bytes) => ({
    text: Buffer.concat([
      Buffer.from('{"job_id": 5, "job_name": "'),
      Buffer.from(bytes.filter((b) => b !== 0x22 && b !== 0x5c && b >= 0x20)),
      Buffer.from('"}'),
    ]),
    expect: undefined as unknown as Row, // judged by the isolation property only
  })),
)
