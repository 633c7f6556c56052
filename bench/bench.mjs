#!/usr/bin/env zx
// @ts-check
// The benchmark suite's entry point (npm run bench): runs bench/run.ts (or, with --replicas, the
// read-replica benchmark), prints the results and writes them with --json.
// Usage: npm run bench -- --help.
// The soak runs on a private embedded PostgreSQL (restarted twice); --soak-seconds 0 skips it.
// On the embedded PostgreSQL, or DATABASE_URL (its user needs CREATEDB). pg_dump/pg_restore
// baselines need client tools at least as new as the server (Debian's are 15).
import { writeFile } from 'node:fs/promises'
import { lib } from '../scripts/ts.mjs'

const { parseCommandLine, wholeNumber } = await lib('args.ts')
const { values: argv } = parseCommandLine(import.meta.url, {
  usage: ['[--rows N] [--api-rows N] [--soak-clients N] [--soak-seconds S] [--json FILE]', '--replicas'],
  summary:
    'Runs every toolkit operation and its baseline side by side on fresh databases (docs/performance.md):\n' +
    'the load, the API, the reports, backup and restore, then a soak with two database restarts. Read the\n' +
    'ratios, measured in the same run. --replicas runs only the read-replica bench, on a primary and standby\n' +
    'of its own (PostgreSQL 15 programs).',
  options: {
    rows: { type: 'string', arg: 'N', help: 'employees generated (default 1000000, at least 1000)', parse: wholeNumber(1000) },
    'api-rows': { type: 'string', arg: 'N', help: 'valid rows sent through the API (default: up to 500000)', parse: wholeNumber(1) },
    'soak-clients': { type: 'string', arg: 'N', help: 'clients of the soak (default 8)', parse: wholeNumber(1) },
    'soak-seconds': { type: 'string', arg: 'S', help: 'how long the soak runs (default 30; 0 skips it)', parse: wholeNumber(0) },
    json: { type: 'string', arg: 'FILE', help: 'also write the results, the numbers of record, as JSON' },
    replicas: { type: 'boolean', help: 'only the read-replica bench' },
  },
  validate: (v) => {
    const others = ['rows', 'api-rows', 'soak-clients', 'soak-seconds', 'json'].filter(
      (k) => v[/** @type {keyof typeof v} */ (k)] !== undefined,
    )
    if (v.replicas && others.length) throw new Error(`--replicas runs only the read-replica bench: it takes no --${others[0]}`)
  },
  examples: ['npm run bench -- --rows 1000000 --json bench.json', 'npm run bench -- --rows 20000 --soak-seconds 0'],
})

const { run } = await lib('cli.ts')
const { bench } = await import('./run.ts')

await run(async ({ url }) => {
  // --replicas: only the read-replica bench, on a primary and standby of its own (bench/replicas.ts).
  if (argv.replicas) return console.log(`\n${await (await import('./replicas.ts')).benchReplicas((s) => process.stderr.write(`${s}\n`))}\n`)
  const rows = argv.rows ?? 1_000_000
  const started = Date.now()
  const soakSeconds = argv['soak-seconds'] ?? 30
  const soak = soakSeconds > 0 ? { clients: argv['soak-clients'] ?? 8, seconds: soakSeconds } : undefined
  const result = await bench(url, {
    rows,
    apiRows: argv['api-rows'],
    soak,
    log: (s) => process.stderr.write(`${s}\n`),
  })
  console.log(`\n${result.table}\n`)
  console.log(
    `checks: ${Object.entries(result.checks)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}`,
  )
  console.log(
    `${rows} employees (${result.generated.valid} valid, ${result.generated.rejected} invalid), ${((Date.now() - started) / 1000).toFixed(0)} s in all`,
  )
  if (argv.json) await writeFile(argv.json, JSON.stringify(result, null, 2))
  if (Object.values(result.checks).some((v) => v === false)) throw new Error('a correctness check failed')
})
