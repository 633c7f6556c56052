// load.mjs --max-rejects against an oracle in exact decimal arithmetic: N rows, or P% of the
// rows read, with P at the boundary as often as not (the end-to-end exit 3 and rollback are in
// load-options.test.ts).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { overLimit, parseRejectLimit } from '../../src/tasks.ts'

const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const scale = Number(process.env.FUZZ_SCALE ?? 1)

/** Whether rejected/received is more than `percent` (decimal text), in millionths of a percent. */
function oracle(percent: string, rejected: number, received: number): boolean {
  const [whole, fraction = ''] = percent.split('.')
  const millionths = BigInt(whole) * 1_000_000n + BigInt(fraction.padEnd(6, '0').slice(0, 6))
  return BigInt(rejected) * 100_000_000n > millionths * BigInt(received)
}

const counts = fc
  .integer({ min: 1, max: 10_000_000 })
  .chain((received) => fc.tuple(fc.integer({ min: 0, max: received }), fc.constant(received)))
const decimalText = fc
  .tuple(fc.integer({ min: 0, max: 100 }), fc.option(fc.stringMatching(/^[0-9]{1,4}$/)))
  .map(([whole, fraction]) => (fraction === null || whole === 100 ? String(whole) : `${whole}.${fraction}`))
/** P% with two decimals, and counts at P% exactly, or one reject either side. */
const boundary = fc
  .tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: -1, max: 1 }))
  .map(([hundredths, k, shift]) => {
    const received = 10_000 * k
    const rejected = Math.min(received, Math.max(0, hundredths * k + shift))
    return { rejected, received, percent: `${Math.floor(hundredths / 100)}.${String(hundredths % 100).padStart(2, '0')}` }
  })
const random = fc.tuple(counts, decimalText).map(([[rejected, received], percent]) => ({ rejected, received, percent }))

test('P%: more than P percent of the rows read, exactly (boundaries included)', () => {
  fc.assert(
    fc.property(fc.oneof(boundary, random), ({ rejected, received, percent }) => {
      const over = overLimit(parseRejectLimit(`${percent}%`), rejected, received)
      assert.equal(over !== undefined, oracle(percent, rejected, received), `${rejected} of ${received} against ${percent}%`)
    }),
    { seed, numRuns: Math.ceil(20_000 * scale) },
  )
})

test('N: more than N rejected rows', () => {
  fc.assert(
    fc.property(counts, fc.nat(10_000_000), ([rejected, received], rows) => {
      assert.equal(overLimit(parseRejectLimit(String(rows)), rejected, received) !== undefined, rejected > rows)
    }),
    { seed, numRuns: Math.ceil(5_000 * scale) },
  )
})

test('57 rejects of 10,000 rows are not more than 0.57% (found by the property: 0.57 * 10000 is not 5700 in floating point)', () => {
  assert.equal(overLimit(parseRejectLimit('0.57%'), 57, 10_000), undefined)
  assert.match(overLimit(parseRejectLimit('0.57%'), 58, 10_000)!, /^58 of 10000 rows rejected \(0\.58%\), more than --max-rejects 0\.57%$/)
})

test('the limit text: whole numbers, or percentages up to 100%', () => {
  for (const good of ['0', '12', '0%', '0.5%', '100%', '100.000%', '007%']) assert.doesNotThrow(() => parseRejectLimit(good), good)
  for (const bad of ['', '-1', '1.5', '100.01%', '101%', '%', '.5%', '5 %', '1e3', '0x10', '5%%'])
    assert.throws(() => parseRejectLimit(bad), /expected a number of rows/, bad)
})
