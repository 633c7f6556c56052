#!/usr/bin/env zx
// @ts-check
// Install, list or remove the toolkit's pg_cron jobs for this database (--help).
import { lib } from './ts.mjs'

const { parseCommandLine } = await lib('args.ts')
const { values } = parseCommandLine(import.meta.url, {
  usage: ['[--list | --remove]'],
  summary:
    'Installs (idempotently, migrating first), lists or removes the pg_cron jobs of this database:\n' +
    'backups, reports and housekeeping. Needs pg_cron in the server (see the README).',
  options: {
    list: { type: 'boolean', help: 'list the jobs and their last runs' },
    remove: { type: 'boolean', help: 'remove the jobs' },
  },
  environment: [
    [
      'SCHEDULE_BACKUP, SCHEDULE_REPORTS, SCHEDULE_HOUSEKEEPING',
      "5-field cron schedules, in pg_cron's time zone (GMT for pg_cron 1.4; --list prints it)",
    ],
    ['RETENTION_DAYS', 'days the ingest log is kept (90; 1 to 36525)'],
  ],
  examples: ['SCHEDULE_BACKUP="0 3 * * *" npx zx scripts/schedule.mjs', 'npx zx scripts/schedule.mjs --list'],
  validate: (v) => {
    if (v.list && v.remove) throw new Error('use --list or --remove, not both')
  },
})

const { run } = await lib('cli.ts')
const { scheduleCommand } = await lib('commands.ts')
const { migrate } = await lib('migrate.ts')

await run(async ({ url }) => {
  if (!values.list && !values.remove) await migrate(url)
  await scheduleCommand(url, values.remove ? 'remove' : values.list ? 'list' : 'install')
})
