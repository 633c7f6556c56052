// Pruning without pg_cron: unless pg_cron runs this database's housekeeping job, the
// long-running server runs the same command itself, at start and then every
// HOUSEKEEPING_INTERVAL_MINUTES (60), as the owner (the API's role may not prune).
import { connect } from './database.ts'
import { wholeFromEnv } from './env.ts'
import { declaredJobs, jobName } from './schedule.ts'

export interface Housekeeper {
  stop(): Promise<void>
  inProcess: boolean
}

export async function startHousekeeping(url: string, log: (msg: string, fields: object) => void): Promise<Housekeeper> {
  const minutes = wholeFromEnv('HOUSEKEEPING_INTERVAL_MINUTES', 60)
  const job = declaredJobs().find((j) => j.name === 'housekeeping')!
  const sql = connect(url, { max: 1 })
  const [{ db, cron }] = await sql<
    { db: string; cron: boolean }[]
  >`select current_database() as db, to_regclass('cron.job') is not null as cron`
  const scheduled =
    cron &&
    (await sql`select 1 from cron.job where jobname = ${jobName(job.name, db)} and active`.then(
      (r) => r.length > 0,
      () => false,
    ))
  if (scheduled) {
    await sql.end()
    return { inProcess: false, stop: async () => {} }
  }
  let running: Promise<void> = Promise.resolve()
  const run = () => {
    running = running
      .then(async () => {
        // The job's own command (src/schedule.ts): one definition of what housekeeping does.
        const [row] = await sql.unsafe(job.command)
        log('housekeeping (in the server: no pg_cron job for it)', { deleted: Object.values(row)[0] })
      })
      .catch((err: Error) => log('housekeeping failed, will retry', { error: err.message }))
    return running
  }
  await run()
  const timer = setInterval(run, minutes * 60_000)
  timer.unref()
  return {
    inProcess: true,
    stop: async () => {
      clearInterval(timer)
      await running
      await sql.end({ timeout: 5 })
    },
  }
}
