// Scheduled runs: the functions the pg_cron jobs call (in a clone, everywhere), the backup
// runner, and, where the server has pg_cron (CI preloads it), the jobs themselves firing.
// Long, as one file: its tests share one database loaded with the samples.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { connect } from '../../src/database.ts'
import { loadDirectory } from '../../src/load.ts'
import { checkPgCron, declaredJobs, installJobs, jobName, listJobs, NoPgCron, removeJobs } from '../../src/schedule.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { startBackupWorker } from '../../src/worker.ts'
import { freshDatabase, listenApi } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
await loadDirectory(sql, SAMPLE_DIR)

const until = async (check: () => Promise<boolean>, ms: number) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 250))
  }
  return false
}
const pending = async () => (await sql`select count(*)::int as n from data.backup_requests where finished_at is null`)[0].n

/** A pool as the server's runner has it: the owner (the API role may not use runner.*). */
const apiPool = () => connect(db.url, { max: 4 })

describe('the backup runner', () => {
  test('requests queued while no runner is up are taken when one starts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-runner-'))
    const [{ ids }] = await sql`select api.request_backup() as ids`
    assert.equal(ids.length, 3)
    const pool = apiPool()
    const worker = await startBackupWorker(pool, { dir, pollMs: 3_600_000 })
    try {
      assert.ok(await until(async () => (await pending()) === 0, 30_000))
      const done = await sql`select * from data.backup_requests where request_id = any(${ids}) order by request_id`
      for (const r of done) {
        assert.equal(r.error, null)
        assert.ok(existsSync(join(dir, r.file)), r.file)
        assert.match(r.sha256, /^[0-9a-f]{64}$/)
      }
      assert.deepEqual(
        done.map((r) => r.table_name),
        ['departments', 'jobs', 'employees'],
      )
    } finally {
      await worker.stop()
      await pool.end()
    }
  })

  test('a NOTIFY wakes the runner at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-runner-'))
    const pool = apiPool()
    const worker = await startBackupWorker(pool, { dir, pollMs: 3_600_000 })
    try {
      await new Promise((r) => setTimeout(r, 300))
      await sql`select api.request_backup('jobs')`
      assert.ok(await until(async () => (await pending()) === 0, 10_000), 'the request was not taken')
    } finally {
      await worker.stop()
      await pool.end()
    }
  })

  test('two runners never perform the same request', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-runner-'))
    for (let i = 0; i < 3; i++) await sql`select api.request_backup()`
    const pools = [apiPool(), apiPool()]
    const workers = await Promise.all(pools.map((p) => startBackupWorker(p, { dir, pollMs: 100, keep: 100 })))
    try {
      assert.ok(await until(async () => (await pending()) === 0, 60_000))
      const files =
        await sql`select file, count(*)::int as n from data.backup_requests where file is not null group by file having count(*) > 1`
      assert.deepEqual([...files], [])
      const [{ n }] = await sql`select count(*)::int as n from data.backup_requests where started_at is not null and finished_at is null`
      assert.equal(n, 0)
    } finally {
      await Promise.all(workers.map((w) => w.stop()))
      await Promise.all(pools.map((p) => p.end()))
    }
  })

  test('a runner that dies mid-backup gives its request back', async () => {
    const [
      {
        ids: [id],
      },
    ] = await sql`select api.request_backup('departments') as ids`
    const dying = connect(db.url, { max: 1 })
    await assert.rejects(
      dying.begin(async (tx) => {
        const [claimed] = await tx`select * from runner.claim_backup_request('doomed')`
        assert.equal(claimed.request_id, id)
        throw new Error('the runner died')
      }),
    )
    await dying.end()
    const [row] = await sql`select finished_at from data.backup_requests where request_id = ${id}`
    assert.equal(row.finished_at, null)
    const pool = apiPool()
    const worker = await startBackupWorker(pool, { dir: await mkdtemp(join(tmpdir(), 'hirebase-runner-')) })
    try {
      assert.ok(await until(async () => (await pending()) === 0, 15_000))
    } finally {
      await worker.stop()
      await pool.end()
    }
  })
})

describe('what the jobs call', () => {
  test('housekeeping prunes only what is older than the retention', async () => {
    const [{ batch_id: oldBatch }] = await sql`call ingest_batch('jobs', '[{"job_id": "bad", "job_name": "old"}]')`
    const [{ batch_id: newBatch }] = await sql`call ingest_batch('jobs', '[{"job_id": "bad", "job_name": "new"}]')`
    await sql`update data.ingest_batches set started_at = now() - interval '100 days', finished_at = now() - interval '100 days' where batch_id = ${oldBatch}`
    await sql`insert into data.idempotency_keys values ('old-key', 'h', '{}', now() - interval '8 days'), ('new-key', 'h', '{}', now())`
    const [
      {
        ids: [oldRequest],
      },
    ] = await sql`select api.request_backup('jobs') as ids`
    await sql`update data.backup_requests set finished_at = now() - interval '100 days', file = 'x' where request_id = ${oldRequest}`
    const [{ result }] = await sql`select api.housekeeping() as result`
    assert.ok(result.ingest_batches >= 1 && result.backup_requests >= 1 && result.idempotency_keys >= 1)
    const left = await sql`select
      exists (select from data.ingest_batches where batch_id = ${oldBatch}) as old_batch, exists (select from data.ingest_rejects where batch_id = ${oldBatch}) as old_rejects,
      exists (select from data.ingest_batches where batch_id = ${newBatch}) as new_batch, exists (select from data.ingest_rejects where batch_id = ${newBatch}) as new_rejects,
      exists (select from data.idempotency_keys where idempotency_key = 'old-key') as old_key, exists (select from data.idempotency_keys where idempotency_key = 'new-key') as new_key`
    assert.deepEqual(
      { ...left[0] },
      { old_batch: false, old_rejects: false, new_batch: true, new_rejects: true, old_key: false, new_key: true },
    )
    await assert.rejects(sql`select api.housekeeping(interval '1 hour')`, { code: '22023' })
  })

  test('refresh_reports corrects drifted counts and leaves right ones alone', async () => {
    assert.equal((await sql`select api.refresh_reports() as n`)[0].n, 0)
    await sql`update data.hire_counts set q1 = q1 + 5 where year = 2021 and department_id = 1`
    await sql`delete from data.hire_counts where year = 2021 and department_id = 2`
    await sql`update data.hires_by_department set hires = 0 where year = 2021`
    assert.ok((await sql`select api.refresh_reports() as n`)[0].n > 0)
    assert.equal((await sql`select count(*)::int as n from hires_by_quarter(2021)`)[0].n, 933)
    assert.equal((await sql`select count(*)::int as n from departments_above_mean(2021)`)[0].n, 7)
    assert.equal((await sql`select api.refresh_reports() as n`)[0].n, 0)
  })

  test('GET /schedule lists jobs and recent backup requests', async () => {
    const { base, close } = await listenApi({ databaseUrl: db.url })
    try {
      const res = await fetch(`${base}/schedule`)
      assert.equal(res.status, 200)
      const body = await res.json()
      assert.equal(typeof body.pg_cron, 'boolean')
      assert.ok(Array.isArray(body.jobs))
      assert.ok(body.backup_requests.length > 0 && body.backup_requests[0].request_id)
    } finally {
      await close()
    }
  })

  test("listJobs (schedule.mjs --list) shows what GET /schedule shows: this database's jobs and their last runs", async () => {
    // A stand-in for pg_cron's two tables, in a database of its own (a clone has no pg_cron).
    const other = await freshDatabase()
    await other.sql`create schema cron`
    await other.sql`create table cron.job (jobid bigint primary key, jobname text, schedule text, command text, database text, active boolean)`
    await other.sql`create table cron.job_run_details (runid bigint primary key, jobid bigint, status text, start_time timestamptz, end_time timestamptz, return_message text)`
    await other.sql`insert into cron.job values (1, ${jobName('backup', other.name)}, '0 2 * * *', 'select 1', ${other.name}, true),
      (2, ${jobName('backup', 'elsewhere')}, '0 2 * * *', 'select 2', 'elsewhere', true), (3, 'not_ours', '* * * * *', 'select 3', ${other.name}, true)`
    await other.sql`insert into cron.job_run_details values (1, 1, 'failed', '2026-01-01T02:00:00Z', null, 'x'), (2, 1, 'succeeded', '2026-01-02T02:00:00Z', null, 'y')`
    const { timeZone, jobs } = await listJobs(other.sql)
    assert.ok(timeZone)
    assert.deepEqual(jobs, [
      {
        job: jobName('backup', other.name),
        schedule: '0 2 * * *',
        command: 'select 1',
        active: true,
        last_status: 'succeeded',
        last_run: '2026-01-02T02:00:00+00:00',
      },
    ])
  })

  test('the declared schedules can be overridden from the environment', () => {
    const jobs = declaredJobs({ SCHEDULE_BACKUP: '*/5 * * * *', RETENTION_DAYS: '30' })
    assert.equal(jobs.find((j) => j.name === 'backup')!.schedule, '*/5 * * * *')
    assert.match(jobs.find((j) => j.name === 'housekeeping')!.command, /interval '30 days'/)
    assert.throws(() => declaredJobs({ RETENTION_DAYS: 'soon' }), /RETENTION_DAYS/)
  })
})

describe('pg_cron', async () => {
  const cron = connect(process.env.TEST_SERVER_URL!, { max: 1 })
  after(() => cron.end())
  const hasCron = await checkPgCron(cron).then(
    () => true,
    () => false,
  )
  const skip = (t: { skip: (m: string) => void }) => {
    console.warn(
      'SKIPPED: this PostgreSQL has no pg_cron, so the scheduled-job tests did not run (CI runs them on PostgreSQL 15 with pg_cron preloaded)',
    )
    t.skip('no pg_cron on this server')
  }

  test('a database without pg_cron gets a plain explanation', async () => {
    // The clone never has the extension: pg_cron lives in one database only.
    await assert.rejects(checkPgCron(sql), (err: Error) => err instanceof NoPgCron && /pg_cron|compose\.yaml/.test(err.message))
    await assert.rejects(listJobs(sql), NoPgCron)
  })

  test('installing twice never duplicates a job; --remove removes them', async (t) => {
    if (!hasCron) return skip(t)
    await installJobs(cron, db.name)
    await installJobs(cron, db.name)
    // (listJobs reads this database's own pg_cron, which a test clone never has.)
    const jobs = async () => (await cron`select jobname from cron.job where database = ${db.name} order by jobname`).map((j) => j.jobname)
    assert.deepEqual(
      await jobs(),
      ['backup', 'housekeeping', 'refresh_reports'].map((n) => jobName(n, db.name)),
    )
    assert.equal(await removeJobs(cron, db.name), 3)
    assert.deepEqual(await jobs(), [])
  })

  test('the backup job fires on its own and a backup file appears', { timeout: 180_000 }, async (t) => {
    if (!hasCron) return skip(t)
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-cron-'))
    await sql`delete from data.backup_requests`
    const pool = apiPool()
    const worker = await startBackupWorker(pool, { dir, pollMs: 2_000 })
    try {
      await installJobs(cron, db.name, declaredJobs({ SCHEDULE_BACKUP: '* * * * *' }))
      const fired = await until(
        async () =>
          (await sql`select count(*)::int as n from data.backup_requests where requested_by = 'cron' and file is not null`)[0].n >= 3,
        150_000,
      )
      assert.ok(fired, 'no backup from the cron job within 150 s')
      const [run] = await cron`select d.status from cron.job_run_details d join cron.job j using (jobid)
                                where j.jobname = ${jobName('backup', db.name)} order by d.runid desc limit 1`
      assert.equal(run.status, 'succeeded')
      const [{ file }] = await sql`select file from data.backup_requests where requested_by = 'cron' and file is not null limit 1`
      assert.ok(existsSync(join(dir, file)))
    } finally {
      await removeJobs(cron, db.name)
      await worker.stop()
      await pool.end()
    }
  })
})
