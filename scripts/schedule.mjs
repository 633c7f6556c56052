#!/usr/bin/env zx
// Usage: zx scripts/schedule.mjs [--list|--remove] — install (idempotently), list or remove
// the toolkit's pg_cron jobs for this database. Schedules: src/schedule.ts, overridable with
// SCHEDULE_BACKUP, SCHEDULE_REPORTS, SCHEDULE_HOUSEKEEPING (cron syntax) and RETENTION_DAYS.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { scheduleCommand } = await lib('tasks.ts')
const { migrate } = await lib('migrate.ts')

await run(async ({ url }) => {
  if (!argv.list && !argv.remove) await migrate(url)
  await scheduleCommand(url, argv.remove ? 'remove' : argv.list ? 'list' : 'install')
})
