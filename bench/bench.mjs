#!/usr/bin/env zx
// The benchmark suite's entry point (npm run bench): runs bench/run.ts (or, with --replicas, the
// read-replica benchmark), prints the results and writes them with --json.
// Usage: npm run bench -- [--rows 1000000] [--api-rows 500000] [--soak-clients 8] [--soak-seconds 30] [--json out.json] | --replicas
// The soak runs on a private embedded PostgreSQL (restarted twice); --soak-seconds 0 skips it.
// On the embedded PostgreSQL, or DATABASE_URL (its user needs CREATEDB). pg_dump/pg_restore
// baselines need client tools at least as new as the server (Debian's are 15).
import { writeFile } from 'node:fs/promises'
import { lib } from '../scripts/ts.mjs'

const { run } = await lib('cli.ts')
const { bench } = await import('./run.ts')

await run(async ({ url }) => {
  // --replicas: only the read-replica bench, on a primary and standby of its own (bench/replicas.ts).
  if (argv.replicas) return console.log(`\n${await (await import('./replicas.ts')).benchReplicas((s) => process.stderr.write(`${s}\n`))}\n`)
  const rows = Number(argv.rows ?? 1_000_000)
  if (!Number.isInteger(rows) || rows < 1000) throw new Error('--rows must be a whole number >= 1000')
  const started = Date.now()
  const soakSeconds = Number(argv['soak-seconds'] ?? 30)
  const soak = soakSeconds > 0 ? { clients: Number(argv['soak-clients'] ?? 8), seconds: soakSeconds } : undefined
  const result = await bench(url, {
    rows,
    apiRows: argv['api-rows'] ? Number(argv['api-rows']) : undefined,
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
  if (argv.json) await writeFile(String(argv.json), JSON.stringify(result, null, 2))
  if (Object.values(result.checks).some((v) => v === false)) throw new Error('a correctness check failed')
})
