#!/usr/bin/env zx
// Usage: npm run fuzz -- [--seed N] [--scale K]
// The generated-data properties (test/node/properties.test.ts) run longer than in npm test:
// K times the runs (default 10), with a new random seed unless --seed replays one. The seed
// is printed first; a failure prints its shrunk counterexample (add it to the example tests).
import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { parseArgs } from 'node:util'

const usage = 'usage: npm run fuzz -- [--seed N] [--scale K]'
let values
try {
  ;({ values } = parseArgs({ args: process.argv.slice(3), options: { seed: { type: 'string' }, scale: { type: 'string' }, help: { type: 'boolean' } } }))
} catch (err) {
  console.error(`error: ${err.message}\n${usage}`)
  process.exit(2)
}
if (values.help) {
  console.log(`${usage}\n  --seed N   replay the run of seed N (printed by every run)\n  --scale K  K times the runs of npm test (default 10)\nThe database: DATABASE_URL, or the embedded one (as npm test).`)
  process.exit(0)
}
const seed = values.seed ?? String(randomInt(2 ** 31))
const scale = values.scale ?? '10'
if (!/^[0-9]+$/.test(seed) || !/^[1-9][0-9]*$/.test(scale)) {
  console.error(`error: --seed and --scale take whole numbers\n${usage}`)
  process.exit(2)
}
console.log(`fuzz: seed ${seed}, scale ${scale} (replay: npm run fuzz -- --seed ${seed} --scale ${scale})`)
const { status } = spawnSync(process.execPath, [new URL('../node_modules/zx/build/cli.js', import.meta.url).pathname, new URL('./test.mjs', import.meta.url).pathname, 'test/node/properties.test.ts'], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_SEED: seed, FUZZ_SCALE: scale },
})
process.exit(status ?? 1)
