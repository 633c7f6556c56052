// The backup folder: where each database's and table's backups live, which files in it are
// the toolkit's (named by it, regular, not from the future), listing, pruning, resolving the
// file a restore reads (never outside the folder), and the clean-up of what an interruption
// left behind.
import { lstat, readdir, realpath, rm } from 'node:fs/promises'
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { wholeFromEnv } from '../env.ts'
import { BackupFileError } from '../errors.ts'
import type { Queryable, Sql } from '../database.ts'
import { tablesInLoadOrder } from '../tables.ts'
import { projectRoot } from '../paths.ts'
import { readFileMeta, readSidecar } from './read.ts'

export const PRE_RESTORE = 'pre-restore'

export interface BackupOptions {
  /** The backup folder (BACKUP_DIR). */
  dir: string
  /** How many backups of a table to keep (BACKUP_KEEP). */
  keep?: number
  progress?: (table: string, rows: number, total: number) => void
}

export function backupDirFromEnv(): string {
  return resolve(process.env.BACKUP_DIR || join(projectRoot, 'backups'))
}

export const keepFromEnv = (): number => wholeFromEnv('BACKUP_KEEP', 7)

/** Sortable UTC timestamp for file names: 20261124T181530123Z. */
const BACKUP_NAME = /^\d{8}T\d{9}Z\.avro$/
export const stamp = (d: Date) => d.toISOString().replace(/[-:.]/g, '')

/**
 * Each database's backups in a folder of their own, <BACKUP_DIR>/<database>/<table>/…, so two
 * databases sharing BACKUP_DIR never see each other's files. Characters other than letters,
 * digits, _ and - are %-encoded (no dots: a database named .. stays inside).
 */
export function databaseFolder(root: string, database: string): string {
  return join(
    root,
    database.replace(/[^A-Za-z0-9_-]/g, (c) =>
      [...Buffer.from(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
    ),
  )
}

/** The backup folder of the database `sql` is connected to. */
export async function backupDirOf(sql: Queryable, root: string): Promise<string> {
  const [{ database }] = await sql<{ database: string }[]>`select current_database() as database`
  return databaseFolder(root, database)
}

/** A clock a little fast may name a file slightly ahead; anything further is not ours to trust. */
const FUTURE_SLACK_MS = 60_000

/**
 * The files in `folder` that the toolkit wrote: named by it (a timestamp), regular files
 * (lstat: no symlinks, FIFOs or devices), not named in the future. Oldest first. Anything else
 * is never listed, restored as "the newest" or pruned; a future name gets a warning.
 */
async function toolkitFiles(folder: string): Promise<string[]> {
  const names = (await readdir(folder).catch(() => [] as string[])).filter((n) => BACKUP_NAME.test(n)).sort()
  const files: string[] = []
  for (const name of names) {
    const info = await lstat(join(folder, name)).catch(() => undefined)
    if (!info?.isFile()) continue
    const named = Date.parse(name.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(\d{3})Z\.avro$/, '$1-$2-$3T$4:$5:$6.$7Z'))
    if (!(named <= Date.now() + FUTURE_SLACK_MS)) {
      process.emitWarning(`ignoring ${join(folder, name)}: it is named after a time in the future`)
      continue
    }
    files.push(name)
  }
  return files
}

/** A file system refusal as one plain sentence with its cause; any other error as it is. */
export function storageError(err: unknown, what: string, dir: string): unknown {
  const code = (err as { code?: string })?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BackupFileError('disk_full', `${what} failed: the disk holding ${dir} is full (${code}); nothing was kept`, { cause: err })
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new BackupFileError(
      'backup_dir_not_writable',
      `${what} failed: cannot write in ${dir} (${code}); check BACKUP_DIR and its permissions`,
      { cause: err },
    )
  }
  return err
}

/** Keeps the newest `keep` backups in a folder (only files the toolkit wrote count or go). */
export async function prune(folder: string, keep: number): Promise<void> {
  const names = await toolkitFiles(folder)
  for (const name of names.slice(0, Math.max(0, names.length - keep))) {
    await rm(join(folder, name), { force: true })
    await rm(join(folder, `${name}.sha256`), { force: true })
  }
}

export interface BackupInfo {
  file: string
  bytes: number
  rows: number | null
  created_at: string | null
  sha256: string | null
  kind: 'backup' | 'pre-restore'
}

/** The backups of a table, newest first, then its pre-restore snapshots. */
export async function listBackups(dir: string, table: string): Promise<BackupInfo[]> {
  const list: BackupInfo[] = []
  for (const [sub, kind] of [
    ['', 'backup'],
    [PRE_RESTORE, 'pre-restore'],
  ] as const) {
    const folder = join(dir, table, sub)
    // The toolkit's own files only, newest first.
    const names = (await toolkitFiles(folder)).reverse()
    for (const name of names) {
      const path = join(folder, name)
      // Regular files only: a FIFO or a device named *.avro would block its reader.
      const info = await lstat(path).catch(() => undefined)
      if (!info?.isFile()) continue
      const header = await readFileMeta(path)
      const meta = (k: string) => header?.[`hirebase.${k}`]?.toString() ?? null
      list.push({
        file: relative(join(dir, table), path).split(sep).join('/'),
        bytes: info.size,
        rows: meta('rows') === null ? null : Number(meta('rows')),
        created_at: meta('created_at'),
        sha256: (await readSidecar(path)) ?? null,
        kind,
      })
    }
  }
  return list
}

/**
 * The file a restore of `table` reads: the newest backup, or `file` (a name from the list,
 * or a path), which must resolve inside the backup folder. With `namesOnly` (the API), `file`
 * is a name in the table's folder, never a path from the server's working folder, and the
 * messages do not show where the folder is.
 */
export async function resolveBackupFile(dir: string, table: string, file?: string, namesOnly = false): Promise<string> {
  const root = await realpath(dir).catch(() => {
    throw new BackupFileError(
      'backup_not_found',
      `no backups yet: ${namesOnly ? 'the backup folder' : dir} does not exist (run: npx zx scripts/backup.mjs ${table})`,
    )
  })
  if (!file) {
    // Only the toolkit's own timestamped backups, which sort by name; never a snapshot.
    const newest = (await listBackups(dir, table)).find((b) => b.kind === 'backup' && BACKUP_NAME.test(b.file))
    if (!newest)
      throw new BackupFileError(
        'backup_not_found',
        `no backup of ${table} in ${namesOnly ? 'the backup folder' : join(dir, table)} (run: npx zx scripts/backup.mjs ${table})`,
      )
    return join(root, table, newest.file)
  }
  const inside = (p: string) => p === root || p.startsWith(root + sep)
  const outside = () => new BackupFileError('bad_backup', `refused: ${file} is outside the backup folder${namesOnly ? '' : ` ${root}`}`)
  const candidates = namesOnly
    ? [join(dir, table, file)]
    : isAbsolute(file)
      ? [file]
      : [resolve(file), join(dir, table, file), join(dir, file)]
  for (const candidate of candidates) {
    const real = await realpath(candidate).catch(() => undefined)
    if (real) {
      if (!inside(real)) throw outside()
      // The file itself, not a link to one, and a file (a FIFO would hang the reading).
      if (!(await lstat(candidate)).isFile()) throw new BackupFileError('bad_backup', `${basename(file)} is not a regular file`)
      return real
    }
  }
  if (!inside(resolve(candidates.at(-1)!))) throw outside()
  // A file named on the command line that is not there: a bad argument (exit 2), found only now
  // because the backup folder is the database's.
  throw Object.assign(
    new BackupFileError('backup_not_found', `no such backup file: ${file} (see: npx zx scripts/backup.mjs --list ${table})`),
    { exitCode: 2 },
  )
}

/**
 * What an interruption left in the backup folder, removed at start: temporary files of
 * killed backups, and pre-restore snapshots of restores whose transaction never committed.
 * A table is skipped while another process holds its lock (its backup may be running).
 */
export async function cleanBackupFolder(sql: Sql, dir: string): Promise<string[]> {
  const removed: string[] = []
  for (const table of await tablesInLoadOrder(sql)) {
    await sql.begin(async (tx) => {
      const [{ free }] = await tx<{ free: boolean }[]>`select runner.try_lock_table(${table}) as free`
      if (!free) return
      for (const folder of [join(dir, table), join(dir, table, PRE_RESTORE)]) {
        for (const name of await readdir(folder).catch(() => [] as string[])) {
          const path = join(folder, name)
          if (!(await lstat(path).catch(() => undefined))?.isFile()) continue
          let orphan = name.endsWith('.tmp')
          if (!orphan && folder.endsWith(PRE_RESTORE) && name.endsWith('.avro')) {
            const meta = await readFileMeta(path)
            const xid = meta?.['hirebase.restore_xid']?.toString()
            const server = meta?.['hirebase.restore_server']?.toString() ?? null
            if (xid && /^\d+$/.test(xid))
              orphan =
                (await tx<{ aborted: boolean | null }[]>`select runner.snapshot_aborted(${xid}::bigint, ${server}::text) as aborted`)[0]
                  .aborted === true
          }
          if (!orphan) continue
          await rm(path, { force: true })
          if (name.endsWith('.avro')) await rm(`${path}.sha256`, { force: true })
          removed.push(relative(dir, path))
        }
      }
    })
  }
  return removed
}
