// Avro backups of the tables, and restores from them.
// A backup streams a cursor (the next page fetched while the last is encoded) through
// avsc's encoder into a temporary file, fsyncs it, then renames it into place with a
// .sha256 beside it. A restore streams a file into a staging table with COPY, checks it,
// snapshots the table, then lets the database swap the rows, all in one transaction: any
// failure leaves the table as it was.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createReadStream, createWriteStream, existsSync } from 'node:fs'
import { mkdir, open, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises'
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import avro from 'avsc'
import { avroSchema, avroType, readersFor, tableColumns, type FieldReader } from './avro.ts'
import { copyIn } from './copy.ts'
import { asBackupValueError, BackupFileError } from './errors.ts'
import type { Queryable, Sql, Tx } from './database.ts'
import { projectRoot, projectVersion } from './paths.ts'

export const PRE_RESTORE = 'pre-restore'
/** Rows per cursor fetch: large enough that round trips do not matter, small enough to stay flat. */
const PAGE_ROWS = 5000

export interface BackupOptions {
  /** The backup folder (BACKUP_DIR). */
  dir: string
  /** How many backups of a table to keep (BACKUP_KEEP). */
  keep?: number
  progress?: (table: string, rows: number, total: number) => void
}

export interface BackupResult { table: string; file: string; path: string; rows: number; bytes: number; sha256: string; seconds: number }

export function backupDirFromEnv(): string {
  return resolve(process.env.BACKUP_DIR || join(projectRoot, 'backups'))
}

export function keepFromEnv(): number {
  const keep = Number(process.env.BACKUP_KEEP ?? 7)
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`BACKUP_KEEP must be a whole number >= 1, got "${process.env.BACKUP_KEEP}"`)
  return keep
}

/** Sortable UTC timestamp for file names: 20261124T181530123Z. */
const BACKUP_NAME = /^\d{8}T\d{9}Z\.avro$/
const stamp = (d: Date) => d.toISOString().replace(/[-:.]/g, '')

/** Writes the table's current rows (as `tx` sees them) to <dir>/<table>[/<subfolder>]/<stamp>.avro. */
async function writeBackup(tx: Tx, table: string, options: BackupOptions, subfolder = ''): Promise<BackupResult> {
  const started = performance.now()
  const columns = await tableColumns(tx, table)
  const type = avroType(avroSchema(table, columns))
  const folder = join(options.dir, table, subfolder)
  await mkdir(folder, { recursive: true })
  // Leftovers of a crashed backup: this process holds the table's lock, so none is in use.
  for (const name of await readdir(folder)) if (name.endsWith('.tmp')) await rm(join(folder, name), { force: true })

  const [{ rows: total }] = await tx<{ rows: number }[]>`select count(*)::integer as rows from ${tx(`data.${table}`)}`
  let createdAt = new Date()
  // Two backups of a table within one millisecond must not share a name.
  while (existsSync(join(folder, `${stamp(createdAt)}.avro`))) createdAt = new Date(createdAt.getTime() + 1)
  const name = `${stamp(createdAt)}.avro`
  const path = join(folder, name)
  const tmp = join(folder, `.${name}.tmp`)
  const encoder = new avro.streams.BlockEncoder(type, {
    codec: 'deflate',
    metadata: {
      'hirebase.table': Buffer.from(table),
      'hirebase.rows': Buffer.from(String(total)),
      'hirebase.version': Buffer.from(projectVersion),
      'hirebase.created_at': Buffer.from(createdAt.toISOString()),
    },
  } as never)
  const hash = createHash('sha256')
  let bytes = 0
  const tap = new PassThrough()
  tap.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length })
  const written = pipeline(encoder, tap, createWriteStream(tmp))

  // Date-times leave the database as exact microseconds since the epoch.
  const select = columns.map((c) => c.type === 'timestamp with time zone'
    ? tx`(extract(epoch from ${tx(c.name)}) * 1000000)::bigint::text as ${tx(c.name)}`
    : tx`${tx(c.name)}`)
  const key = columns[0].name
  let rows = 0
  let sha256 = ''
  try {
    const selectList = select.reduce((acc, part, i) => (i === 0 ? tx`${part}` : tx`${acc}, ${part}`))
    const timestamps = columns.filter((c) => c.type === 'timestamp with time zone').map((c) => c.name)
    const encode = async (batch: Record<string, unknown>[]) => {
      for (const row of batch) {
        for (const name of timestamps) row[name] = BigInt(row[name] as string)
        if (!encoder.write(row)) await new Promise((r) => encoder.once('drain', r))
        rows++
      }
      options.progress?.(table, rows, total)
    }
    // The server reads the next page while this process encodes the last one: the callback
    // queues the page and hands back only the page before it (at most two in memory). It
    // queues synchronously: postgres.js does not wait for the callback on the last page.
    let encoding: Promise<void> = Promise.resolve()
    await tx`select ${selectList} from ${tx(`data.${table}`)} order by ${tx(key)}`.cursor(PAGE_ROWS, (batch) => {
      const previous = encoding
      encoding = previous.then(() => new Promise<void>((r) => setImmediate(r))).then(() => encode(batch))
      encoding.catch(() => {}) // awaited by the next page or below, not unhandled meanwhile
      return previous
    })
    await encoding
    encoder.end()
    await written
    if (rows !== total) throw new Error(`backup of ${table}: counted ${total} rows but read ${rows}`)
    sha256 = hash.digest('hex')
    const fh = await open(tmp, 'r+')
    await fh.sync()
    await fh.close()
    await writeFile(`${tmp}.sha256`, `${sha256}  ${name}\n`)
    await rename(`${tmp}.sha256`, `${path}.sha256`)
    await rename(tmp, path)
    const dirHandle = await open(folder, 'r')
    await dirHandle.sync()
    await dirHandle.close()
  } catch (err) {
    encoder.destroy()
    await rm(tmp, { force: true })
    await rm(`${tmp}.sha256`, { force: true })
    throw err
  }
  await prune(folder, options.keep ?? 7)
  return { table, file: relative(options.dir, path), path, rows, bytes, sha256, seconds: (performance.now() - started) / 1000 }
}

async function readSidecar(path: string): Promise<string | undefined> {
  const text = await readFile(`${path}.sha256`, 'utf8').catch(() => undefined)
  return text?.split(/\s+/)[0]
}

/** Keeps the newest `keep` backups in a folder. */
async function prune(folder: string, keep: number): Promise<void> {
  const names = (await readdir(folder)).filter((n) => n.endsWith('.avro')).sort()
  for (const name of names.slice(0, Math.max(0, names.length - keep))) {
    await rm(join(folder, name), { force: true })
    await rm(join(folder, `${name}.sha256`), { force: true })
  }
}

/** Backs up one table under its ingest lock, so no batch or restore interleaves. */
export async function backupTable(sql: Sql, table: string, options: BackupOptions): Promise<BackupResult> {
  return sql.begin(async (tx) => {
    await tx`select api.lock_table(${table})`
    return writeBackup(tx, table, options)
  })
}

export interface BackupInfo { file: string; bytes: number; rows: number | null; created_at: string | null; sha256: string | null; kind: 'backup' | 'pre-restore' }

/** The backups of a table, newest first, then its pre-restore snapshots. */
export async function listBackups(dir: string, table: string): Promise<BackupInfo[]> {
  const list: BackupInfo[] = []
  for (const [sub, kind] of [['', 'backup'], [PRE_RESTORE, 'pre-restore']] as const) {
    const folder = join(dir, table, sub)
    // The toolkit's timestamped files, newest first; any other .avro files after them.
    const names = (await readdir(folder).catch(() => [] as string[])).filter((n) => n.endsWith('.avro'))
      .sort((a, b) => Number(BACKUP_NAME.test(b)) - Number(BACKUP_NAME.test(a)) || b.localeCompare(a))
    for (const name of names) {
      const path = join(folder, name)
      const header = avro.extractFileHeader(path) as { meta: Record<string, Buffer> } | null
      const meta = (k: string) => header?.meta[`hirebase.${k}`]?.toString() ?? null
      list.push({
        file: relative(join(dir, table), path).split(sep).join('/'),
        bytes: (await stat(path)).size,
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
 * or a path), which must resolve inside the backup folder.
 */
export async function resolveBackupFile(dir: string, table: string, file?: string): Promise<string> {
  const root = await realpath(dir).catch(() => { throw new BackupFileError('backup_not_found', `no backups yet: ${dir} does not exist (run: zx scripts/backup.mjs ${table})`) })
  if (!file) {
    // Only the toolkit's own timestamped backups, which sort by name; never a snapshot.
    const newest = (await listBackups(dir, table)).find((b) => b.kind === 'backup' && BACKUP_NAME.test(b.file))
    if (!newest) throw new BackupFileError('backup_not_found', `no backup of ${table} in ${join(dir, table)} (run: zx scripts/backup.mjs ${table})`)
    return join(root, table, newest.file)
  }
  const inside = (p: string) => p === root || p.startsWith(root + sep)
  const outside = () => new BackupFileError('bad_backup', `refused: ${file} is outside the backup folder ${root}`)
  const candidates = isAbsolute(file) ? [file] : [resolve(file), join(dir, table, file), join(dir, file)]
  for (const candidate of candidates) {
    const real = await realpath(candidate).catch(() => undefined)
    if (real) {
      if (!inside(real)) throw outside()
      return real
    }
  }
  if (!inside(resolve(candidates.at(-1)!))) throw outside()
  throw new BackupFileError('backup_not_found', `no such backup file: ${file} (see: zx scripts/backup.mjs --list ${table})`)
}

export interface FileCheck { path: string; table: string | null; rows: number; metadataRows: number | null; sha256: string; checksum: 'ok' | 'none' }

/**
 * Reads an Avro file to the end, handing each record to `onRecord` (reading pauses while the
 * promise it may return is pending), and checks what can be checked: magic, sync markers,
 * blocks, the row count in the metadata, the .sha256 beside it. The callbacks' own errors
 * end the reading and come out as they are.
 */
async function readBackupFile(path: string, onHeader: (schema: object, meta: Record<string, Buffer>) => void,
  onRecord: (record: Record<string, unknown>) => Promise<void> | void): Promise<FileCheck> {
  const hash = createHash('sha256')
  const tap = new PassThrough()
  tap.on('data', (chunk: Buffer) => hash.update(chunk))
  // The decoder reads records with our types (BigInt longs): parseHook may return a type.
  const decoder = new avro.streams.BlockDecoder({ parseHook: (schema: avro.Schema) => avroType(schema) } as never)
  let type: avro.Type | undefined
  let meta: Record<string, Buffer> = {}
  let refused: Error | undefined // the file is readable, but the caller cannot take it
  const refuse = (err: unknown) => decoder.destroy(refused = err as Error)
  decoder.on('metadata', (t: avro.Type, _codec: string, header: { meta: Record<string, Buffer> }) => {
    try {
      meta = header.meta
      type = t
      onHeader(JSON.parse(meta['avro.schema'].toString()), meta)
    } catch (err) {
      refuse(err)
    }
  })
  let rows = 0
  // Records straight off the decoder: a stream stage per record would cost more than the record.
  decoder.on('data', (record: Record<string, unknown>) => {
    try {
      const busy = onRecord(record)
      rows++
      if (busy) {
        decoder.pause()
        busy.then(() => decoder.resume(), refuse)
      }
    } catch (err) {
      refuse(err)
    }
  })
  await pipeline(createReadStream(path), tap, decoder)
    .catch((err: Error) => {
      throw refused ?? new BackupFileError('bad_backup', `${basename(path)} is not a readable Avro file: ${err.message}`, { cause: err })
    })
  if (!type) throw new BackupFileError('bad_backup', `${basename(path)} is not a readable Avro file: no header`)
  const sha256 = hash.digest('hex')
  const expected = await readSidecar(path)
  if (expected && expected !== sha256) throw new BackupFileError('bad_backup', `${basename(path)} is damaged: its SHA-256 is ${sha256}, the .sha256 beside it says ${expected}`)
  const metaRows = meta['hirebase.rows'] ? Number(meta['hirebase.rows'].toString()) : null
  if (metaRows !== null && metaRows !== rows) throw new BackupFileError('bad_backup', `${basename(path)} is incomplete: its metadata says ${metaRows} rows, it holds ${rows}`)
  return { path, table: meta['hirebase.table']?.toString() ?? null, rows, metadataRows: metaRows, sha256, checksum: expected ? 'ok' : 'none' }
}

function checkFileTable(path: string, table: string, meta: Record<string, Buffer>): void {
  const fileTable = meta['hirebase.table']?.toString()
  if (fileTable && fileTable !== table) throw new BackupFileError('bad_backup', `${basename(path)} is a backup of ${fileTable}, not of ${table}`)
}

/** `backup.mjs --verify`: reads a file end to end and checks its schema against the table. */
export async function verifyBackup(sql: Queryable, path: string, table?: string): Promise<FileCheck> {
  let fileTable: string | undefined
  let writerSchema: object = {}
  const check = await readBackupFile(path, (schema, meta) => {
    if (table) checkFileTable(path, table, meta)
    fileTable = table ?? meta['hirebase.table']?.toString() ?? (schema as { name?: string }).name
    writerSchema = schema
  }, () => {})
  if (!fileTable) throw new BackupFileError('bad_backup', `${basename(path)} does not say which table it holds: name it with --table`)
  readersFor(fileTable, await tableColumns(sql, fileTable), writerSchema)
  return { ...check, table: fileTable }
}

export interface RestoreOptions extends BackupOptions {
  /** A file per table; the newest backup for the others. */
  files?: Record<string, string | undefined>
  dryRun?: boolean
}

export interface TableRestore { table: string; file: string; rows_before: number; rows_after: number; added: number; changed: number; removed: number; snapshot?: string }

export interface RestoreResult { dryRun: boolean; tables: TableRestore[]; seconds: number }

/**
 * Restores `tables` (in dependency order) from their backups in one transaction. Each file
 * is streamed into a staging table and fully checked before any table is touched; then each
 * table's current rows are saved as a pre-restore snapshot, and the rows are swapped.
 */
export async function restoreTables(sql: Sql, tables: string[], options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now()
  const order = (await sql<{ table_name: string }[]>`
    select table_name from data.dictionary_tables where table_name = any(${tables}) order by load_order`).map((r) => r.table_name)
  const unknown = tables.filter((t) => !order.includes(t))
  if (unknown.length) throw Object.assign(new Error(`unknown table "${unknown[0]}"`), { code: 'IBTAB' })
  const files = new Map<string, string>()
  for (const table of order) files.set(table, await resolveBackupFile(options.dir, table, options.files?.[table]))

  return sql.begin(async (tx) => {
    for (const table of order) await tx`select api.lock_table(${table})`
    for (const table of order) await stageFile(tx, table, files.get(table)!, options)
    const [{ result }] = await tx<{ result: Record<string, Omit<TableRestore, 'table' | 'file'>> }[]>`
      select api.restore_apply(${order}, true) as result`
    const snapshots = new Map<string, string>()
    if (!options.dryRun) {
      try {
        for (const table of order) snapshots.set(table, (await writeBackup(tx, table, options, PRE_RESTORE)).file)
        await tx`select api.restore_apply(${order}, false)`
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
      tables: order.map((table) => ({ table, file: relative(options.dir, files.get(table)!), ...result[table], snapshot: snapshots.get(table) })),
      seconds: (performance.now() - started) / 1000,
    }
  }).catch((err) => { throw asBackupValueError(err) })
}

/** Streams one file into the session's restore_<table> staging table, checking it on the way. */
async function stageFile(tx: Tx, table: string, path: string, options: RestoreOptions): Promise<void> {
  await tx`select api.open_restore_stage(${table})`
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
  const reading = readBackupFile(path, (schema, meta) => {
    checkFileTable(path, table, meta)
    readers = readersFor(table, columns, schema)
  }, (record) => {
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
  }).then((check) => { flush(); out.end(); return check }, (err) => { out.destroy(); throw err }) // aborts the COPY
  const [copied, read] = await Promise.allSettled([copyIn(tx`copy ${tx(`restore_${table}`)} from stdin`, out as unknown as Readable), reading])
  // The file's own problem says more than the COPY it aborted.
  if (read.status === 'rejected') throw read.reason
  if (copied.status === 'rejected') throw copied.reason
}
