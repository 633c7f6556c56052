#!/usr/bin/env zx
// @ts-check
// Load departments.csv, jobs.csv and employees.csv from a folder, migrating first (--help).
import { readdirSync } from 'node:fs'
import { lib } from './ts.mjs'

const { existingPath, parseCommandLine, wholeNumber } = await lib('args.ts')
const { parseRejectLimit } = await lib('tasks.ts')
const { values, positionals } = parseCommandLine(import.meta.url, {
  usage: ['[dir] [options]'],
  summary:
    'Loads departments.csv, jobs.csv and employees.csv (header-less CSV) from dir (default: the sample data\n' +
    'in data/historical/), in that order, migrating first. Every row is validated in the database; a rejected row\n' +
    'is logged with its reasons in ingest_rejects. Each file is one transaction; with --dry-run or --max-rejects\n' +
    'the whole load is one. Only regular files are read; symbolic links only with --follow-symlinks.\n' +
    'Exit codes: 0 loaded (rejects included), 1 failed (nothing of the failed file written), 2 bad arguments,\n' +
    '3 more rejects than --max-rejects (the load rolled back).',
  options: {
    'dry-run': { type: 'boolean', help: 'validate everything and print the full verdict, then roll back: nothing is written' },
    header: {
      type: 'boolean',
      help: 'skip the first record of each file, after any blank lines; refused if it looks like data (without it, a header is refused)',
    },
    'max-rejects': {
      type: 'string',
      arg: 'N|P%',
      help: 'fail (exit 3, everything rolled back) above N rejected rows, or P% of the rows read',
      parse: parseRejectLimit,
    },
    jobs: {
      type: 'string',
      arg: 'K',
      help: 'validate large files on K connections at once (default: server CPUs, at most 4; see README)',
      parse: wholeNumber(1),
    },
    'follow-symlinks': { type: 'boolean', help: "open a symbolic link's target (refused by default)" },
    'max-record-bytes': {
      type: 'string',
      arg: 'N',
      help: 'refuse a file with a record over N bytes (default LOAD_MAX_RECORD_BYTES, 1 MiB)',
      parse: wholeNumber(1),
    },
    'max-fields': {
      type: 'string',
      arg: 'N',
      help: 'refuse a file with a record of more than N fields (default LOAD_MAX_FIELDS, 100)',
      parse: wholeNumber(1),
    },
  },
  positionals: { max: 1 },
  environment: [
    ['LOAD_MAX_RECORD_BYTES', 'the longest record in bytes (1048576)'],
    ['LOAD_MAX_FIELDS', 'the most fields in one record (100)'],
    ['LOAD_PARALLEL_MIN_BYTES', 'the smallest file validated on several connections (16777216)'],
    ['CI', 'set: progress as plain lines, as when the output is not a terminal'],
  ],
  examples: ['npx zx scripts/load.mjs data/historical --dry-run', 'npx zx scripts/load.mjs ~/export --header --max-rejects 1%'],
  validate: (_values, [dir]) => {
    if (dir === undefined) return
    existingPath(dir, 'folder')
    // Before the database is started: which files are read is the database's list (runner.load_order).
    if (!readdirSync(dir).some((name) => name.endsWith('.csv'))) throw new Error(`${JSON.stringify(dir)} has no .csv file to load`)
  },
})

const { run } = await lib('cli.ts')
const { loadSamples } = await lib('tasks.ts')

await run(async ({ url }) => {
  await loadSamples(url, positionals[0], {
    dryRun: values['dry-run'],
    header: values.header,
    maxRejects: values['max-rejects'],
    followSymlinks: values['follow-symlinks'],
    maxRecordBytes: values['max-record-bytes'],
    maxFields: values['max-fields'],
    jobs: values.jobs,
  })
})
