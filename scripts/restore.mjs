#!/usr/bin/env zx
// Usage: zx scripts/restore.mjs <table> [file] [--dry-run]   restore from the newest backup, or from file
//        zx scripts/restore.mjs --all [--dry-run]            all tables from their newest backups, in one transaction
// The table's current rows are saved first under backups/<table>/pre-restore/, so a restore can be undone.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { restoreCommand } = await lib('tasks.ts')

await run(async ({ url }) => {
  const dryRun = Boolean(argv['dry-run'])
  if (argv.all) return restoreCommand(url, 'all', undefined, dryRun)
  const [table, file] = argv._.map(String)
  if (!table) throw new Error('usage: zx scripts/restore.mjs <table> [file] [--dry-run] | --all [--dry-run]')
  await restoreCommand(url, [table], file, dryRun)
})
