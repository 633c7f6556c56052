#!/usr/bin/env zx
// @ts-check
// Back up tables as Avro files, verify a backup file, or list a table's backups (--help).
import { lib } from './ts.mjs'

const { existingPath, parseCommandLine } = await lib('args.ts')
const { values, positionals } = parseCommandLine(import.meta.url, {
  usage: ['<table>... | --all', '--verify <file> [--table <table>]', '--list <table>'],
  summary:
    'Writes each table to BACKUP_DIR/<database>/<table>/<UTC timestamp>.avro with a .sha256 beside it,\n' +
    'keeping the newest BACKUP_KEEP per table; --verify reads a file end to end (checksum, row count,\n' +
    'schema against the table); --list lists the backups and pre-restore snapshots of a table.',
  options: {
    all: { type: 'boolean', help: 'every table, in load order' },
    verify: { type: 'string', arg: '<file>', help: 'check this backup file instead of writing one' },
    table: { type: 'string', arg: '<table>', help: 'with --verify: the table the file must fit (default: the one it names)' },
    list: { type: 'string', arg: '<table>', help: 'list the backups of this table' },
  },
  positionals: { max: Infinity },
  environment: [
    ['BACKUP_DIR', 'folder of the backups (default backups/)'],
    ['BACKUP_KEEP', 'backups kept per table (default 7)'],
    ['FILE_MODE', 'mode of the files written (default 0600)'],
    ['AVRO_MAX_BLOCK_BYTES', 'the largest Avro block --verify reads (default 16 MiB)'],
    ['CI', 'set: no progress line on a terminal (as when the output is not one)'],
  ],
  examples: ['npx zx scripts/backup.mjs --all', 'npx zx scripts/backup.mjs --list employees'],
  validate: (v, tables) => {
    if (v.table !== undefined && v.verify === undefined) throw new Error('--table goes with --verify')
    const forms = [v.all || tables.length > 0, v.verify !== undefined, v.list !== undefined].filter(Boolean).length
    if (forms === 0) throw new Error('name the tables to back up, or --all, --verify <file>, --list <table>')
    if (forms > 1 || (v.all && tables.length > 0)) throw new Error('use one of: <table>..., --all, --verify, --list')
    if (v.verify !== undefined) existingPath(v.verify, 'file')
  },
})

const { run } = await lib('cli.ts')
const { backupCommand, listCommand, verifyCommand } = await lib('commands.ts')

await run(async ({ url }) => {
  if (values.verify !== undefined) return verifyCommand(url, values.verify, values.table)
  if (values.list !== undefined) return listCommand(url, values.list)
  await backupCommand(url, values.all ? 'all' : positionals)
})
