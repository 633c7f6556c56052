// Restoring tables from backups, in one transaction: each file is streamed into a staging
// table with COPY and checked on the way, the database checks the whole set, the tables'
// current rows are saved as pre-restore snapshots, and the database swaps the rows. Any
// failure leaves the tables, and the folder, as they were.
import { once } from 'node:events'
import { rm } from 'node:fs/promises'
import { basename, join, relative } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { copyIn } from '../copy.ts'
import { asBackupValueError, BackupFileError } from '../errors.ts'
import type { Queryable, Sql, Tx } from '../database.ts'
import { tablesInLoadOrder } from '../tables.ts'
import { readersFor, tableColumns, type FieldReader } from './avro.ts'
import { PRE_RESTORE, resolveBackupFile, type BackupOptions } from './folders.ts'
import { readBackupFile, type FileCheck } from './read.ts'
import { writeBackup } from './write.ts'

function checkFileTable(path: string, table: string, meta: Record<string, Buffer>): void {
  const fileTable = meta['hirebase.table']?.toString()
  if (fileTable && fileTable !== table)
    throw new BackupFileError('bad_backup', `${basename(path)} is a backup of ${fileTable}, not of ${table}`)
}

/** `backup.mjs --verify`: reads a file end to end and checks its schema against the table. */
export async function verifyBackup(sql: Queryable, path: string, table?: string): Promise<FileCheck> {
  let fileTable: string | undefined
  let writerSchema: object = {}
  const check = await readBackupFile(
    path,
    (schema, meta) => {
      if (table) checkFileTable(path, table, meta)
      fileTable = table ?? meta['hirebase.table']?.toString() ?? (schema as { name?: string }).name
      writerSchema = schema
    },
    () => {},
  )
  if (!fileTable) throw new BackupFileError('bad_backup', `${basename(path)} does not say which table it holds: name it with --table`)
  readersFor(fileTable, await tableColumns(sql, fileTable), writerSchema)
  return { ...check, table: fileTable }
}

export interface RestoreOptions extends BackupOptions {
  /** A file per table; the newest backup for the others. */
  files?: Record<string, string | undefined>
  /** The files are names from the table's list (the API), not paths. */
  namesOnly?: boolean
  dryRun?: boolean
}

export interface TableRestore {
  table: string
  file: string
  rows_before: number
  rows_after: number
  added: number
  changed: number
  removed: number
  snapshot?: string
}

export interface RestoreResult {
  dryRun: boolean
  tables: TableRestore[]
  seconds: number
}

/**
 * Restores `tables` (in dependency order) from their backups in one transaction. Each file
 * is streamed into a staging table and fully checked before any table is touched; then each
 * table's current rows are saved as a pre-restore snapshot, and the rows are swapped.
 */
export async function restoreTables(sql: Sql, tables: string[], options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now()
  const order = await tablesInLoadOrder(sql, tables) // (IBTAB for an unknown one)
  return sql
    .begin(async (tx) => {
      // A restore can take as long as the file is big.
      await tx`select set_config('statement_timeout', '0', true)`
      for (const table of order) await tx`select runner.lock_table(${table})`
      // Resolved under the lock: a concurrent backup cannot prune the chosen file meanwhile.
      const files = new Map<string, string>()
      for (const table of order) files.set(table, await resolveBackupFile(options.dir, table, options.files?.[table], options.namesOnly))
      for (const table of order) await stageFile(tx, table, files.get(table)!, options)
      const [{ result }] = await tx<{ result: Record<string, Omit<TableRestore, 'table' | 'file'>> }[]>`
      select runner.restore_apply(${order}, true) as result`
      const snapshots = new Map<string, string>()
      if (!options.dryRun) {
        try {
          // The snapshot names this transaction: if it never commits (the process killed during
          // the apply), the next start finds it aborted and removes the snapshot. And the server:
          // another one (the embedded default and DATABASE_URL share BACKUP_DIR/hirebase/) has
          // its own transaction ids, which say nothing about this one's.
          const [{ xid, cluster }] = await tx<
            { xid: string; cluster: string | null }[]
          >`select txid_current()::text as xid, runner.server_id() as cluster`
          const meta: Record<string, string> = cluster ? { restore_xid: xid, restore_server: cluster } : { restore_xid: xid }
          for (const table of order) snapshots.set(table, (await writeBackup(tx, table, options, PRE_RESTORE, meta)).file)
          await tx`select runner.restore_apply(${order}, false)`
        } catch (err) {
          // The restore is rolled back: its snapshots would only be clutter.
          for (const file of snapshots.values()) {
            await rm(join(options.dir, file), { force: true })
            await rm(join(options.dir, `${file}.sha256`), { force: true })
          }
          throw err
        }
      }
      return {
        dryRun: !!options.dryRun,
        tables: order.map((table) => ({
          table,
          file: relative(options.dir, files.get(table)!),
          ...result[table],
          snapshot: snapshots.get(table),
        })),
        seconds: (performance.now() - started) / 1000,
      }
    })
    .catch((err) => {
      throw asBackupValueError(err)
    })
}

/** Streams one file into the session's restore_<table> staging table, checking it on the way. */
async function stageFile(tx: Tx, table: string, path: string, options: RestoreOptions): Promise<void> {
  await tx`select runner.open_restore_stage(${table})`
  const columns = await tableColumns(tx, table)
  let readers: FieldReader[] = []
  let pending: string[] = []
  let rows = 0
  const out = new PassThrough()
  // Reading waits while the COPY is behind: memory stays flat however slow the server.
  const flush = () => {
    const full = pending.length > 0 && !out.write(pending.join(''))
    pending = []
    if (full) return once(out, 'drain').then(() => {})
  }
  const reading = readBackupFile(
    path,
    (schema, meta) => {
      checkFileTable(path, table, meta)
      readers = readersFor(table, columns, schema)
    },
    (record) => {
      rows++
      try {
        pending.push(columns.map((c, i) => readers[i](record[c.name])).join('\t') + '\n')
      } catch (err) {
        throw err instanceof BackupFileError ? new BackupFileError(err.code, `${basename(path)}, record ${rows}: ${err.message}`) : err
      }
      if (rows % 1000 === 0) {
        options.progress?.(table, rows, 0)
        return flush()
      }
    },
  ).then(
    (check) => {
      flush()
      out.end()
      return check
    },
    (err) => {
      out.destroy()
      throw err
    },
  ) // aborts the COPY
  const [copied, read] = await Promise.allSettled([
    copyIn(tx`copy ${tx(`restore_${table}`)} from stdin`, out as unknown as Readable),
    reading,
  ])
  // The file's own problem says more than the COPY it aborted.
  if (read.status === 'rejected') throw read.reason
  if (copied.status === 'rejected') throw copied.reason
}
