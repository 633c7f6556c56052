// WAL positions (LSN) as reads take them (?min_lsn= and the X-Hirebase-LSN header) against an
// oracle written from PostgreSQL's pg_lsn input rule: two hexadecimal numbers of 1 to 8 digits
// joined by "/", the first the high 32 bits; nothing else. Properties:
//   parse     src/replicas.ts parseLsn accepts exactly what the oracle accepts, with its value
//             (BigInt arithmetic, digit by digit);
//   HTTP      a read with a generated ?min_lsn= or header is a 400 naming it exactly when the
//             oracle refuses the value (after trimming, as the API documents no more);
//   pg_lsn    PostgreSQL takes the same strings, orders valid ones as parseLsn's values compare,
//             and writes them back as formatLsn does.
// `npm test` runs them with a fixed seed; `npm run fuzz` longer (FUZZ_SEED, FUZZ_SCALE).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { formatLsn, parseLsn } from '../../src/replicas.ts'
import { freshDatabase, listenApi } from '../support.ts'

const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const scale = Number(process.env.FUZZ_SCALE ?? 1)
const runs = (n: number) => ({ seed, numRuns: Math.ceil(n * scale) })

const HEX = '0123456789abcdefABCDEF'
/** The oracle: pg_lsn's input rule, digit by digit. */
function oracle(text: string): bigint | null {
  const parts = text.split('/')
  if (parts.length !== 2) return null
  let value = 0n
  for (const part of parts) {
    if (part.length < 1 || part.length > 8) return null
    let n = 0n
    for (const c of part) {
      const digit = HEX.indexOf(c)
      if (digit < 0) return null
      n = n * 16n + BigInt(digit < 16 ? digit : digit - 6)
    }
    value = value * 2n ** 32n + n
  }
  return value
}

const hexDigits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...HEX), minLength: min, maxLength: max })
/** X/Y forms: every length 1..8 (leading zeros too), the bounds, one digit too many. */
const validLsn = fc.oneof(
  fc.tuple(hexDigits(1, 8), hexDigits(1, 8)).map(([a, b]) => `${a}/${b}`),
  fc.constantFrom('0/0', 'FFFFFFFF/FFFFFFFF', 'ffffffff/0', '0/FFFFFFFF', '00000000/00000001', '1/0', '0/16B3748'),
)
const junkChar = fc.constantFrom(
  '0',
  '7',
  'a',
  'F',
  'g',
  'x',
  'X',
  '/',
  '-',
  '+',
  '.',
  ' ',
  '\t',
  '\n',
  '\u00a0',
  '\uff10',
  'é',
  '%',
  '\u0000',
)
const anyLsn = fc.oneof(
  validLsn,
  fc.tuple(hexDigits(9, 12), hexDigits(1, 8)).map(([a, b]) => `${a}/${b}`), // overlong
  fc.tuple(hexDigits(1, 8), hexDigits(9, 12)).map(([a, b]) => `${a}/${b}`),
  fc
    .tuple(fc.constantFrom('', ' ', '\t', '  ', '\n', '+', '-', '0x'), validLsn, fc.constantFrom('', ' ', '\t', '\n', '/', '/0', 'g'))
    .map((p) => p.join('')),
  fc.tuple(validLsn, junkChar, fc.nat(12)).map(([v, c, i]) => v.slice(0, i % (v.length + 1)) + c + v.slice(i % (v.length + 1))),
  fc.string({ unit: junkChar, maxLength: 20 }),
  hexDigits(0, 17),
)

test('parseLsn accepts exactly the X/Y forms the oracle does, with its value; formatLsn writes it back', () => {
  fc.assert(
    fc.property(anyLsn, (text) => {
      const got = parseLsn(text)
      assert.equal(got, oracle(text), JSON.stringify(text))
      if (got !== null) assert.equal(oracle(formatLsn(got)), got)
    }),
    runs(5000),
  )
})

const db = await freshDatabase()

test('PostgreSQL takes the same strings, orders valid ones as their values compare, and writes them as formatLsn', async () => {
  const asPg = async (text: string): Promise<string | null> => {
    try {
      return (await db.sql<{ t: string }[]>`select ${text}::pg_lsn::text as t`)[0].t
    } catch {
      return null // (a NUL cannot even be sent: PostgreSQL refuses it too)
    }
  }
  await fc.assert(
    fc.asyncProperty(anyLsn, validLsn, async (text, other) => {
      const value = parseLsn(text)
      const pg = await asPg(text)
      assert.equal(pg !== null, value !== null, `pg_lsn and parseLsn disagree on ${JSON.stringify(text)}`)
      if (value === null) return
      assert.equal(pg, formatLsn(value))
      const otherValue = parseLsn(other)!
      const [c] = await db.sql<{ lt: boolean; eq: boolean; gt: boolean }[]>`
        select ${text}::pg_lsn < ${other}::pg_lsn as lt, ${text}::pg_lsn = ${other}::pg_lsn as eq, ${text}::pg_lsn > ${other}::pg_lsn as gt`
      assert.deepEqual([c.lt, c.eq, c.gt], [value < otherValue, value === otherValue, value > otherValue], `${text} vs ${other}`)
    }),
    runs(300),
  )
})

test('a read with a generated ?min_lsn= or X-Hirebase-LSN is a 400 naming it exactly when the oracle refuses it', async () => {
  const { base } = await listenApi({ databaseUrl: db.url })
  // Header values are what HTTP can carry: visible ASCII, spaces and tabs.
  const headerSafe = (s: string) => /^[\x20-\x7e\t]*$/.test(s)
  await fc.assert(
    fc.asyncProperty(anyLsn, fc.option(anyLsn.filter(headerSafe), { nil: undefined }), async (query, header) => {
      const headers: Record<string, string> = header === undefined ? {} : { 'x-hirebase-lsn': header }
      const res = await fetch(`${base}/stats?min_lsn=${encodeURIComponent(query)}`, { headers })
      const body = await res.text()
      const badQuery = oracle(query.trim()) === null
      const badHeader = header !== undefined && oracle(header.trim()) === null
      if (!badQuery && !badHeader) {
        assert.equal(res.status, 200, `${JSON.stringify(query)} / ${JSON.stringify(header)}: ${body}`)
        return
      }
      assert.equal(res.status, 400, `${JSON.stringify(query)} / ${JSON.stringify(header)}: ${body}`)
      const { code } = JSON.parse(body).error
      assert.ok(
        (badQuery && code === 'bad_parameter:min_lsn') || (badHeader && code === 'bad_parameter:x-hirebase-lsn'),
        `${code} for ${JSON.stringify(query)} / ${JSON.stringify(header)}`,
      )
    }),
    runs(300),
  )
})
