#!/usr/bin/env zx
// Usage: zx scripts/load.mjs [dir] [--follow-symlinks] [--max-record-bytes N] [--max-fields N]
// — load departments.csv, jobs.csv and employees.csv from dir (default: the sample data in
// data/historical/), migrating first. Only regular files are read; symbolic links only with
// --follow-symlinks. A record over N bytes (LOAD_MAX_RECORD_BYTES, 1 MiB) or N fields
// (LOAD_MAX_FIELDS, 100) refuses the file.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { loadSamples } = await lib('tasks.ts')

const limit = (name) => (argv[name] === undefined ? undefined : Number(argv[name]))
await run(async ({ url }) => {
  const options = { followSymlinks: Boolean(argv['follow-symlinks']), maxRecordBytes: limit('max-record-bytes'), maxFields: limit('max-fields') }
  for (const [name, value] of Object.entries(options)) {
    if (typeof value === 'number' && !(Number.isInteger(value) && value >= 1)) throw new Error(`--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a whole number >= 1`)
  }
  await loadSamples(url, argv._[0], options)
})
