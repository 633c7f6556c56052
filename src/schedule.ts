// The toolkit's pg_cron jobs, declared in one place. Each schedule can be overridden by an
// environment variable; the commands call api.* functions of this database.
import type { Queryable } from './database.ts'
import { wholeFromEnv } from './env.ts'

export interface Job {
  name: string
  schedule: string
  command: string
  what: string
}

/** The jobs, with their schedules (cron syntax, minute granularity, in pg_cron's time zone). */
export function declaredJobs(env: NodeJS.ProcessEnv = process.env): Job[] {
  const retentionDays = retentionDaysFrom(env)
  return [
    {
      name: 'backup',
      schedule: cronFrom(env, 'SCHEDULE_BACKUP', '0 2 * * *'),
      command: `select api.request_backup(null, 'cron')`,
      what: 'queue a backup of every table; the running server (scripts/serve.mjs) writes the files',
    },
    {
      name: 'refresh_reports',
      schedule: cronFrom(env, 'SCHEDULE_REPORTS', '15 2 * * *'),
      command: 'select api.refresh_reports()',
      what: 'check the counts the reports read against employees, and correct any drift',
    },
    {
      name: 'housekeeping',
      schedule: cronFrom(env, 'SCHEDULE_HOUSEKEEPING', '30 3 * * *'),
      command: `select api.housekeeping(interval '${retentionDays} days')`,
      what: `delete ingest log rows, backup requests and pg_cron run history older than ${retentionDays} days`,
    },
  ]
}

/** RETENTION_DAYS: whole days from 1 to 100 years (36525); PostgreSQL would take more and fail at every run. */
export function retentionDaysFrom(env: NodeJS.ProcessEnv = process.env): number {
  return wholeFromEnv('RETENTION_DAYS', 90, { max: 36525, unit: 'days', note: '100 years' }, env)
}

// The five fields of a cron schedule and their ranges (pg_cron's syntax, minute granularity).
const CRON_FIELDS: [string, number, number][] = [
  ['minute', 0, 59],
  ['hour', 0, 23],
  ['day of month', 1, 31],
  ['month', 1, 12],
  ['day of week', 0, 7],
]

/** Checks a 5-field cron schedule (numbers, *, ranges a-b, lists a,b, steps x/n); an error names the variable and the field. */
export function checkCron(name: string, schedule: string): string {
  const fields = schedule.trim().split(/\s+/)
  const bad = (why: string) =>
    new Error(
      `${name} must be a 5-field cron schedule (minute hour day-of-month month day-of-week, e.g. "30 3 * * *"), got "${schedule}": ${why}`,
    )
  if (fields.length !== 5) throw bad(`${fields.length} fields`)
  fields.forEach((field, i) => {
    const [label, min, max] = CRON_FIELDS[i]
    for (const part of field.split(',')) {
      const m = /^(\*|(\d{1,2})(?:-(\d{1,2}))?)(?:\/(\d{1,2}))?$/.exec(part)
      if (!m) throw bad(`the ${label} field "${field}" is not a number, *, range, list or step`)
      for (const n of [m[2], m[3]])
        if (n !== undefined && (Number(n) < min || Number(n) > max)) throw bad(`the ${label} ${n} is outside ${min}-${max}`)
      if (m[2] !== undefined && m[3] !== undefined && Number(m[2]) > Number(m[3]))
        throw bad(`the ${label} range ${m[2]}-${m[3]} is backwards`)
      if (m[4] !== undefined && Number(m[4]) < 1) throw bad(`the ${label} step must be at least 1`)
    }
  })
  return fields.join(' ')
}

const cronFrom = (env: NodeJS.ProcessEnv, name: string, fallback: string) => checkCron(name, env[name] ?? fallback)

/** pg_cron job names are unique per user across databases: the database is part of the name. */
export const jobName = (job: string, database: string) => `hirebase_${job}@${database}`

export class NoPgCron extends Error {}

/** Makes sure pg_cron can be used from this database, or explains precisely why not and how to get it. */
export async function checkPgCron(sql: Queryable): Promise<void> {
  // pg_settings, not current_setting(): it hides what this user may not read instead of failing.
  const [s] = await sql<{ has_cron: boolean; preload: string | null; cron_db: string | null; db: string; available: boolean }[]>`
    select to_regclass('cron.job') is not null as has_cron,
           (select setting from pg_settings where name = 'shared_preload_libraries') as preload,
           (select setting from pg_settings where name = 'cron.database_name') as cron_db, current_database() as db,
           exists (select from pg_available_extensions where name = 'pg_cron') as available`
  if (s.has_cron) return
  const how =
    "Use compose.yaml (PostgreSQL 15 with pg_cron), or install your distribution's postgresql-NN-cron package and set " +
    `shared_preload_libraries = 'pg_cron' and cron.database_name = '${s.db}' in postgresql.conf, restart, then as a superuser run ` +
    `CREATE EXTENSION pg_cron in ${s.db}. The embedded default has no pg_cron; everything else works without it.`
  if (!s.available) throw new NoPgCron(`this PostgreSQL server has no pg_cron. ${how}`)
  if (
    s.preload !== null &&
    !s.preload
      .split(',')
      .map((x) => x.trim())
      .includes('pg_cron')
  )
    throw new NoPgCron(`pg_cron is installed but not preloaded. ${how}`)
  if (s.cron_db && s.cron_db !== s.db) {
    throw new NoPgCron(
      `pg_cron runs in database ${s.cron_db}, not ${s.db}: set cron.database_name = '${s.db}' and restart, or point DATABASE_URL at ${s.cron_db}.`,
    )
  }
  // Preloaded for this database but not created yet: a superuser (as in compose.yaml) can do it now.
  try {
    await sql`create extension if not exists pg_cron`
  } catch {
    throw new NoPgCron(
      `pg_cron is preloaded but the extension is not created in ${s.db}: as a superuser run CREATE EXTENSION pg_cron; ` +
        'GRANT USAGE ON SCHEMA cron TO <this user>;',
    )
  }
}

export interface InstalledJob {
  job: string
  schedule: string
  command: string
  active: boolean
  last_status: string | null
  last_run: string | null
}

/**
 * Installs or updates the declared jobs for `database`, run from the pg_cron database
 * `cron` (the same connection when they coincide). Named jobs are upserts: running it
 * twice never duplicates a job. Jobs of ours that are no longer declared are removed.
 */
export async function installJobs(cron: Queryable, database: string, jobs = declaredJobs()): Promise<void> {
  await checkPgCron(cron)
  const [{ here }] = await cron<{ here: boolean }[]>`select current_database() = ${database} as here`
  for (const job of jobs) {
    if (here) await cron`select cron.schedule(${jobName(job.name, database)}, ${job.schedule}, ${job.command})`
    else await cron`select cron.schedule_in_database(${jobName(job.name, database)}, ${job.schedule}, ${job.command}, ${database})`
  }
  const keep = jobs.map((j) => jobName(j.name, database))
  for (const { jobname } of await cron<{ jobname: string }[]>`
    select jobname from cron.job where database = ${database} and jobname like 'hirebase\_%' and not (jobname = any(${keep}))`) {
    await cron`select cron.unschedule(${jobname})`
  }
}

export async function removeJobs(cron: Queryable, database: string): Promise<number> {
  await checkPgCron(cron)
  const jobs = await cron<{ jobname: string }[]>`select jobname from cron.job where database = ${database} and jobname like 'hirebase\_%'`
  for (const { jobname } of jobs) await cron`select cron.unschedule(${jobname})`
  return jobs.length
}

/** This database's jobs with their last runs, and pg_cron's time zone: what GET /schedule shows (api.schedule_status). */
export async function listJobs(sql: Queryable): Promise<{ timeZone: string; jobs: InstalledJob[] }> {
  await checkPgCron(sql)
  const [{ s }] = await sql<{ s: { time_zone: string; jobs: ScheduledJob[] } }[]>`select api.schedule_status() as s`
  return {
    timeZone: s.time_zone,
    jobs: s.jobs.map((j) => ({
      job: j.job,
      schedule: j.schedule,
      command: j.command,
      active: j.active,
      last_status: j.last_run?.status ?? null,
      last_run: j.last_run?.started_at ?? null,
    })),
  }
}

/** A job as api.schedule_status() returns it. */
interface ScheduledJob {
  job: string
  schedule: string
  command: string
  active: boolean
  last_run: { status: string; started_at: string } | null
}
