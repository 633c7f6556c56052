// The backup runner inside the long-running server: it LISTENs for backup requests (queued
// by the pg_cron job, the API or SQL), takes each with FOR UPDATE SKIP LOCKED, writes the
// Avro backup, and records the outcome. Requests queued while no runner was up are taken
// at start; a poll every minute covers notifications lost to a reconnect.
import { hostname } from 'node:os'
import type { BackupOptions } from './backup/folders.ts'
import { backupTable } from './backup/write.ts'
import type { Sql } from './database.ts'

export const BACKUP_CHANNEL = 'hirebase_backup_requests'

export interface Worker {
  stop(): Promise<void>
  drain(): Promise<void>
}

export async function startBackupWorker(
  sql: Sql,
  options: BackupOptions & { log?: (msg: string, fields: object) => void; pollMs?: number },
): Promise<Worker> {
  const worker = `${hostname()}:${process.pid}`
  const log = options.log ?? (() => {})
  let running: Promise<void> = Promise.resolve()
  let stopped = false

  /** Takes one request; false when none is pending. */
  const takeOne = () =>
    sql.begin(async (tx) => {
      const [request] = await tx<{ request_id: string; table_name: string }[]>`select * from runner.claim_backup_request(${worker})`
      if (!request) return false
      try {
        // The claim's row lock is held (tx stays open) while another connection writes the backup.
        const r = await backupTable(sql, request.table_name, options)
        await tx`select runner.finish_backup_request(${request.request_id}, ${r.file}, ${r.rows}, ${r.bytes}, ${r.sha256}, null)`
        log('backup request done', { request_id: request.request_id, table: request.table_name, file: r.file, rows: r.rows })
      } catch (err) {
        await tx`select runner.finish_backup_request(${request.request_id}, null, null, null, null, ${(err as Error).message})`
        log('backup request failed', { request_id: request.request_id, table: request.table_name, error: (err as Error).message })
      }
      return true
    })

  // One drain at a time in this process; a wake-up during a drain queues one more pass.
  const drain = () => {
    running = running
      .then(async () => {
        while (!stopped && (await takeOne())) {
          /* next */
        }
      })
      .catch((err) => log('backup runner: cannot reach the database, will retry', { error: (err as Error).message }))
    return running
  }

  const listener = await sql.listen(
    BACKUP_CHANNEL,
    () => {
      void drain()
    },
    () => {
      void drain()
    },
  )
  const poll = setInterval(() => {
    void drain()
  }, options.pollMs ?? 60_000)
  poll.unref()
  return {
    drain,
    async stop() {
      stopped = true
      clearInterval(poll)
      await listener.unlisten().catch(() => {})
      await running
    },
  }
}
