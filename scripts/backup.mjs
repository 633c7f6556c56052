#!/usr/bin/env zx
// Usage: zx scripts/backup.mjs <table>... | --all      write backups/<table>/<UTC timestamp>.avro
//        zx scripts/backup.mjs --verify <file> [--table <table>]   check a file end to end
//        zx scripts/backup.mjs --list <table>          list a table's backups
// BACKUP_DIR (default backups/) and BACKUP_KEEP (default 7 per table) apply.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { backupCommand, listCommand, verifyCommand } = await lib('tasks.ts')

const usage = 'usage: zx scripts/backup.mjs <table>... | --all | --verify <file> [--table <table>] | --list <table>'
await run(async ({ url }) => {
  if (argv.verify) return verifyCommand(url, String(argv.verify), argv.table)
  if (argv.list) return listCommand(url, String(argv.list))
  if (!argv.all && argv._.length === 0) throw new Error(usage)
  await backupCommand(url, argv.all ? 'all' : argv._.map(String))
})
