#!/usr/bin/env zx
// @ts-check
// npm run fuzz: the generated-data properties, longer than in npm test (--help).
import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { lib } from './ts.mjs'

const { parseCommandLine, wholeNumber } = await lib('args.ts')
const { values } = parseCommandLine(import.meta.url, {
  usage: ['[--seed N] [--scale K]'],
  summary:
    'Runs the generated-data properties (test/node/properties.test.ts and the *-property.test.ts files)\n' +
    'K times as many times as npm test does, with a new random seed unless --seed replays one. The seed\n' +
    'is printed first; a failure prints its shrunk counterexample (add it to the example tests).\n' +
    'npm run fuzz -- [options] runs this.',
  options: {
    seed: { type: 'string', arg: 'N', help: 'replay the run of seed N (printed by every run)', parse: wholeNumber(0) },
    scale: { type: 'string', arg: 'K', help: 'K times the runs of npm test (default 10)', parse: wholeNumber(1) },
  },
  examples: ['npm run fuzz -- --scale 100', 'npm run fuzz -- --seed 1234567 --scale 10'],
})

// Each reads FUZZ_SEED and FUZZ_SCALE (their runs in npm test times the scale).
const PROPERTY_FILES = [
  'test/node/properties.test.ts',
  'test/node/restore-property.test.ts',
  'test/node/header-property.test.ts',
  'test/node/lsn-property.test.ts',
  'test/sql/caps-property.test.ts',
  'test/node/query-params-property.test.ts',
  'test/node/env-property.test.ts',
]
const seed = String(values.seed ?? randomInt(2 ** 31))
const scale = String(values.scale ?? 10)
console.log(`fuzz: seed ${seed}, scale ${scale} (replay: npm run fuzz -- --seed ${seed} --scale ${scale})`)
const { status } = spawnSync(
  process.execPath,
  [
    new URL('../node_modules/zx/build/cli.js', import.meta.url).pathname,
    new URL('./test.mjs', import.meta.url).pathname,
    ...PROPERTY_FILES,
  ],
  {
    stdio: 'inherit',
    env: { ...process.env, FUZZ_SEED: seed, FUZZ_SCALE: scale },
  },
)
process.exit(status ?? 1)
