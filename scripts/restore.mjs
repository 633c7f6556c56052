#!/usr/bin/env zx
// @ts-check
// Restore tables from their Avro backups (--help).
import { lib } from './ts.mjs'

const { parseCommandLine } = await lib('args.ts')
const { values, positionals } = parseCommandLine(import.meta.url, {
  usage: ['<table> [file] [--dry-run]', '--all [--dry-run]'],
  summary:
    'Restores a table from its newest backup (or from file, a path under BACKUP_DIR), or every table\n' +
    'from its newest backup in one transaction. The current rows are saved first under\n' +
    '<table>/pre-restore/, so a restore can be undone; a failed restore changes nothing.',
  options: {
    all: { type: 'boolean', help: 'every table from its newest backup' },
    'dry-run': { type: 'boolean', help: 'check everything and print what would change, then roll back' },
  },
  positionals: { max: 2 },
  environment: [
    ['BACKUP_DIR', 'folder of the backups (default backups/)'],
    ['BACKUP_KEEP', 'snapshots kept per table (default 7)'],
    ['AVRO_MAX_BLOCK_BYTES', 'the largest Avro block read, stored or inflated (default 16 MiB)'],
    ['CI', 'set: no progress line on a terminal (as when the output is not one)'],
  ],
  examples: ['npx zx scripts/restore.mjs employees --dry-run', 'npx zx scripts/restore.mjs --all'],
  validate: (v, args) => {
    if (v.all && args.length > 0) throw new Error('--all takes no table')
    if (!v.all && args.length === 0) throw new Error('name the table to restore, or --all')
  },
})

const { run } = await lib('cli.ts')
const { restoreCommand } = await lib('commands.ts')

await run(async ({ url }) => {
  if (values.all) return restoreCommand(url, 'all', undefined, values['dry-run'])
  const [table, file] = positionals
  await restoreCommand(url, [table], file, values['dry-run'])
})
