// The benchmark suite's smoke run, so it never rots: 20k rows, every measurement, and its
// correctness checks (counts, report equality, identical restore). Never timings.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { bench } from '../../bench/run.ts'

test('npm run bench runs end to end on 20k rows, and its numbers are right', { timeout: 300_000 }, async () => {
  // The soak (a private cluster restarted twice: ~20 s) runs in npm run bench, not here.
  const result = await bench(process.env.TEST_SERVER_URL!, { rows: 20_000, apiRows: 5_000 })
  assert.deepEqual(
    Object.entries(result.checks).filter(([, ok]) => ok === false),
    [],
  )
  assert.equal(result.generated.valid + result.generated.rejected, 20_000)
  assert.ok(result.generated.rejected > 400 && result.generated.rejected < 1000, `${result.generated.rejected} invalid rows`)
  for (const group of ['load', 'api', 'backup', 'restore', 'reports'])
    assert.ok(
      result.results.some((r) => r.group === group),
      group,
    )
  assert.match(result.table, /^\| group \| measurement \|/)
})
