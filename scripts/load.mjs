#!/usr/bin/env zx
// Usage: zx scripts/load.mjs [dir] — load departments.csv, jobs.csv and employees.csv
// from dir (default: the sample data in data/historical/), migrating first.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { loadSamples } = await lib('tasks.ts')

await run(async ({ url }) => { await loadSamples(url, argv._[0]) })
