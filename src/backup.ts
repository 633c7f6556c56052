// Avro backups of the tables, and restores from them.
// A backup streams a cursor (the next page fetched while the last is encoded) through
// avsc's encoder into a temporary file, fsyncs it, then renames it into place with a
// .sha256 beside it. A restore streams a file into a staging table with COPY, checks it,
// snapshots the table, then lets the database swap the rows, all in one transaction: any
// failure leaves the table as it was.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { constants, existsSync } from 'node:fs'
import { lstat, open, readdir, readFile, realpath, rename, rm } from 'node:fs/promises'
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { inflateRaw as inflateRawCallback, type ZlibOptions } from 'node:zlib'
import avro from 'avsc'
import { avroSchema, avroType, readersFor, tableColumns, type FieldReader } from './avro.ts'
import { copyIn } from './copy.ts'
import { asBackupValueError, BackupFileError } from './errors.ts'
import { createExclusive, outputFolder, writeFileAtomically } from './files.ts'
import type { Queryable, Sql, Tx } from './database.ts'
import { projectRoot, projectVersion } from './paths.ts'

export const PRE_RESTORE = 'pre-restore'
/** Rows per cursor fetch: large enough that round trips do not matter, small enough to stay flat. */
const PAGE_ROWS = 5000
const inflateRaw = promisify(inflateRawCallback) as (data: Buffer, options: ZlibOptions) => Promise<Buffer>

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

/**
 * Each database's backups in a folder of their own, <BACKUP_DIR>/<database>/<table>/…, so two
 * databases sharing BACKUP_DIR never see each other's files. Characters other than letters,
 * digits, _ and - are %-encoded (no dots: a database named .. stays inside).
 */
export function databaseFolder(root: string, database: string): string {
  return join(root, database.replace(/[^A-Za-z0-9_-]/g, (c) => [...Buffer.from(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')))
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

/** Writes the table's current rows (as `tx` sees them) to <dir>/<table>[/<subfolder>]/<stamp>.avro. */
async function writeBackup(tx: Tx, table: string, options: BackupOptions, subfolder = '', meta: Record<string, string> = {}): Promise<BackupResult> {
  try {
    return await writeBackupFile(tx, table, options, subfolder, meta)
  } catch (err) {
    throw storageError(err, `backup of ${table}`, options.dir)
  }
}

/** A file system refusal as one plain sentence with its cause; any other error as it is. */
export function storageError(err: unknown, what: string, dir: string): unknown {
  const code = (err as { code?: string })?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BackupFileError('disk_full', `${what} failed: the disk holding ${dir} is full (${code}); nothing was kept`, { cause: err })
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new BackupFileError('backup_dir_not_writable', `${what} failed: cannot write in ${dir} (${code}); check BACKUP_DIR and its permissions`, { cause: err })
  }
  return err
}

async function writeBackupFile(tx: Tx, table: string, options: BackupOptions, subfolder: string, extraMeta: Record<string, string>): Promise<BackupResult> {
  const started = performance.now()
  const columns = await tableColumns(tx, table)
  const type = avroType(avroSchema(table, columns))
  const folder = join(options.dir, table, subfolder)
  await outputFolder(folder)
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
      ...Object.fromEntries(Object.entries(extraMeta).map(([k, v]) => [`hirebase.${k}`, Buffer.from(v)])),
    },
  } as never)
  const hash = createHash('sha256')
  let bytes = 0
  const tap = new PassThrough()
  tap.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length })
  const written = pipeline(encoder, tap, (await createExclusive(tmp)).createWriteStream())
  // A write failure (disk full, ...) must end the backup, not the process: it is awaited
  // below, and the encoding races it, so it is never left unhandled.
  written.catch(() => {})

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
        if (!encoder.write(row)) await Promise.race([once(encoder, 'drain'), written])
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
    await Promise.race([encoding, written])
    encoder.end()
    await written
    if (rows !== total) throw new Error(`backup of ${table}: counted ${total} rows but read ${rows}`)
    sha256 = hash.digest('hex')
    const fh = await open(tmp, constants.O_RDONLY | constants.O_NOFOLLOW)
    await fh.sync()
    await fh.close()
    await writeFileAtomically(`${path}.sha256`, `${sha256}  ${name}\n`)
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

/** Keeps the newest `keep` backups in a folder (only files the toolkit wrote count or go). */
async function prune(folder: string, keep: number): Promise<void> {
  const names = await toolkitFiles(folder)
  for (const name of names.slice(0, Math.max(0, names.length - keep))) {
    await rm(join(folder, name), { force: true })
    await rm(join(folder, `${name}.sha256`), { force: true })
  }
}

/** Backs up one table under its ingest lock, so no batch or restore interleaves. */
export async function backupTable(sql: Sql, table: string, options: BackupOptions): Promise<BackupResult> {
  return sql.begin(async (tx) => {
    await tx`select set_config('statement_timeout', '0', true)` // as long as the table is big
    await tx`select runner.lock_table(${table})`
    return writeBackup(tx, table, options)
  })
}

export interface BackupInfo { file: string; bytes: number; rows: number | null; created_at: string | null; sha256: string | null; kind: 'backup' | 'pre-restore' }

/** The backups of a table, newest first, then its pre-restore snapshots. */
export async function listBackups(dir: string, table: string): Promise<BackupInfo[]> {
  const list: BackupInfo[] = []
  for (const [sub, kind] of [['', 'backup'], [PRE_RESTORE, 'pre-restore']] as const) {
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
 * or a path), which must resolve inside the backup folder.
 */
export async function resolveBackupFile(dir: string, table: string, file?: string): Promise<string> {
  const root = await realpath(dir).catch(() => { throw new BackupFileError('backup_not_found', `no backups yet: ${dir} does not exist (run: npx zx scripts/backup.mjs ${table})`) })
  if (!file) {
    // Only the toolkit's own timestamped backups, which sort by name; never a snapshot.
    const newest = (await listBackups(dir, table)).find((b) => b.kind === 'backup' && BACKUP_NAME.test(b.file))
    if (!newest) throw new BackupFileError('backup_not_found', `no backup of ${table} in ${join(dir, table)} (run: npx zx scripts/backup.mjs ${table})`)
    return join(root, table, newest.file)
  }
  const inside = (p: string) => p === root || p.startsWith(root + sep)
  const outside = () => new BackupFileError('bad_backup', `refused: ${file} is outside the backup folder ${root}`)
  const candidates = isAbsolute(file) ? [file] : [resolve(file), join(dir, table, file), join(dir, file)]
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
  throw new BackupFileError('backup_not_found', `no such backup file: ${file} (see: npx zx scripts/backup.mjs --list ${table})`)
}

export interface FileCheck { path: string; table: string | null; rows: number; metadataRows: number | null; sha256: string; checksum: 'ok' | 'none' }

/** The most bytes one Avro block may hold, compressed or not (AVRO_MAX_BLOCK_BYTES). */
export function maxBlockBytesFromEnv(): number {
  const raw = process.env.AVRO_MAX_BLOCK_BYTES
  const n = Number(raw ?? 16 * 1024 * 1024)
  if (!Number.isInteger(n) || n < 1024) throw new Error(`AVRO_MAX_BLOCK_BYTES must be a whole number of bytes >= 1024, got "${raw}"`)
  return n
}

const HEADER = avro.Type.forSchema({
  type: 'record', name: 'org.apache.avro.file.Header',
  fields: [{ name: 'magic', type: { type: 'fixed', name: 'Magic', size: 4 } }, { name: 'meta', type: { type: 'map', values: 'bytes' } },
    { name: 'sync', type: { type: 'fixed', name: 'Sync', size: 16 } }],
})
const LONG = avro.Type.forSchema('long')
const MAGIC = Buffer.from('Obj\x01', 'latin1')
/** A header holds the schema: generous, but bounded. */
const MAX_HEADER_BYTES = 1024 * 1024

/** Opens a regular file for reading without ever blocking on a FIFO or a device. */
async function openRegular(path: string) {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  if (!(await fh.stat()).isFile()) {
    await fh.close()
    throw new BackupFileError('bad_backup', `${basename(path)} is not a regular file`)
  }
  return fh
}

/** A file read in order, chunk by chunk, with exact takes (each byte hashed once). */
class FileBytes {
  private parts: Buffer[] = []
  private length = 0
  private chunks: AsyncIterator<Buffer>
  constructor(stream: AsyncIterable<Buffer>, private onChunk: (chunk: Buffer) => void) {
    this.chunks = stream[Symbol.asyncIterator]()
  }

  /** Buffers at least n bytes if the file has them; false when it ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.length < n) {
      const next = await this.chunks.next()
      if (next.done) return false
      this.onChunk(next.value)
      this.parts.push(next.value)
      this.length += next.value.length
    }
    return true
  }

  /** The buffered bytes, up to n, without taking them. */
  peek(n: number): Buffer {
    if (this.parts.length > 1 && this.parts[0].length < n) this.parts = [Buffer.concat(this.parts)]
    return (this.parts[0] ?? Buffer.alloc(0)).subarray(0, n)
  }

  take(n: number): Buffer {
    const out = this.peek(n)
    this.parts[0] = this.parts[0].subarray(n)
    if (this.parts[0].length === 0) this.parts.shift()
    this.length -= n
    return out
  }

  get buffered(): number { return this.length }
}

/** Reads an Avro header from the start of `bytes`: magic, metadata, sync marker. */
async function readHeader(bytes: FileBytes, name: string): Promise<{ meta: Record<string, Buffer>; sync: Buffer }> {
  for (let want = 4096; ; want *= 4) {
    const complete = await bytes.fill(want)
    if (!bytes.peek(4).equals(MAGIC)) throw new BackupFileError('bad_backup', `${name} is not an Avro file (no Obj\\x01 magic)`)
    const { value, offset } = HEADER.decode(bytes.peek(bytes.buffered)) as { value: { meta: Record<string, Buffer>; sync: Buffer }; offset: number }
    if (offset >= 0) {
      bytes.take(offset)
      return { meta: value.meta, sync: Buffer.from(value.sync) }
    }
    if (!complete) throw new BackupFileError('bad_backup', `${name} is truncated: its header is incomplete`)
    if (want > MAX_HEADER_BYTES) throw new BackupFileError('bad_backup', `${name}: its header is larger than ${MAX_HEADER_BYTES} bytes`)
  }
}

/** The metadata of an Avro file, read without blocking; null when it is not a readable Avro file. */
async function readFileMeta(path: string): Promise<Record<string, Buffer> | null> {
  let fh
  try {
    fh = await openRegular(path)
    return (await readHeader(new FileBytes(fh.createReadStream({ autoClose: false, highWaterMark: 64 * 1024 }), () => {}), basename(path))).meta
  } catch {
    return null
  } finally {
    await fh?.close()
  }
}

/**
 * Reads an Avro file to the end, handing each record to `onRecord` (reading waits while
 * the promise it may return is pending), and checks everything that can be checked: magic,
 * every block whole and followed by the sync marker (a cut file fails even without the
 * toolkit's row count), each block's records filling it exactly, block sizes under
 * AVRO_MAX_BLOCK_BYTES (a deflate bomb is refused before it is inflated), the row count in
 * the metadata, the .sha256 beside it. The callbacks' own errors come out as they are.
 */
async function readBackupFile(path: string, onHeader: (schema: object, meta: Record<string, Buffer>) => void,
  onRecord: (record: Record<string, unknown>) => Promise<void> | void, maxBlockBytes = maxBlockBytesFromEnv()): Promise<FileCheck> {
  const name = basename(path)
  const bad = (why: string) => new BackupFileError('bad_backup', `${name} ${why}`)
  const hash = createHash('sha256')
  const fh = await openRegular(path)
  let rows = 0
  let meta: Record<string, Buffer>
  try {
    const bytes = new FileBytes(fh.createReadStream({ autoClose: false, highWaterMark: 256 * 1024 }), (chunk) => hash.update(chunk))
    const header = await readHeader(bytes, name)
    meta = header.meta
    const codec = meta['avro.codec']?.toString() ?? 'null'
    if (codec !== 'null' && codec !== 'deflate') throw bad(`uses the ${codec} codec: only null and deflate are supported`)
    let schema: object
    let type: avro.Type
    try {
      schema = JSON.parse(meta['avro.schema']?.toString() ?? '')
      type = avroType(schema as avro.Schema)
    } catch (err) {
      throw bad(`is not a readable Avro file: bad schema (${(err as Error).message})`)
    }
    onHeader(schema, meta)
    const readLong = async (what: string, block: number) => {
      await bytes.fill(10)
      const { value, offset } = LONG.decode(bytes.peek(10)) as { value: number; offset: number }
      if (offset < 0) throw bad(`is truncated: block ${block} has no complete ${what}`)
      bytes.take(offset)
      return value
    }
    for (let block = 1; await bytes.fill(1); block++) {
      const count = await readLong('record count', block)
      const size = await readLong('size', block)
      if (size < 0 || count < 0) throw bad(`is damaged: block ${block} has a negative size or count`)
      if (size > maxBlockBytes) throw bad(`is refused: block ${block} holds ${size} bytes, more than AVRO_MAX_BLOCK_BYTES (${maxBlockBytes})`)
      if (!(await bytes.fill(size))) throw bad(`is truncated: block ${block} should hold ${size} bytes, the file ends after ${bytes.buffered}`)
      const stored = bytes.take(size)
      if (!(await bytes.fill(16))) throw bad(`is truncated: block ${block} is not followed by its sync marker`)
      if (!bytes.take(16).equals(header.sync)) throw bad(`is damaged: the sync marker after block ${block} is wrong`)
      let data = stored
      if (codec === 'deflate') {
        data = await inflateRaw(stored, { maxOutputLength: maxBlockBytes }).catch((err: Error & { code?: string }) => {
          if (err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
            throw bad(`is refused: block ${block} inflates to more than AVRO_MAX_BLOCK_BYTES (${maxBlockBytes}) bytes`)
          }
          throw bad(`is damaged: block ${block} does not inflate (${err.message})`)
        })
      }
      // Every record takes at least one byte: a larger count is a lie that would spin here.
      if (count > data.length) throw bad(`is damaged: block ${block} claims ${count} records in ${data.length} bytes`)
      let at = 0
      for (let i = 0; i < count; i++) {
        const { value, offset } = type.decode(data, at) as { value: Record<string, unknown>; offset: number }
        if (offset < 0) throw bad(`is damaged: block ${block} ends inside record ${i + 1} of ${count}`)
        at = offset
        rows++
        const busy = onRecord(value)
        if (busy) await busy
        else if (rows % 4096 === 0) await new Promise((r) => setImmediate(r)) // let the event loop breathe
      }
      if (at !== data.length) throw bad(`is damaged: block ${block} has ${data.length - at} bytes after its ${count} records`)
    }
  } finally {
    await fh.close()
  }
  const sha256 = hash.digest('hex')
  const expected = await readSidecar(path)
  if (expected && expected !== sha256) throw new BackupFileError('bad_backup', `${name} is damaged: its SHA-256 is ${sha256}, the .sha256 beside it says ${expected}`)
  const metaRows = meta['hirebase.rows'] ? Number(meta['hirebase.rows'].toString()) : null
  if (metaRows !== null && metaRows !== rows) throw new BackupFileError('bad_backup', `${name} is incomplete: its metadata says ${metaRows} rows, it holds ${rows}`)
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
  return sql.begin(async (tx) => {
    // A restore can take as long as the file is big.
    await tx`select set_config('statement_timeout', '0', true)`
    for (const table of order) await tx`select runner.lock_table(${table})`
    // Resolved under the lock: a concurrent backup cannot prune the chosen file meanwhile.
    const files = new Map<string, string>()
    for (const table of order) files.set(table, await resolveBackupFile(options.dir, table, options.files?.[table]))
    for (const table of order) await stageFile(tx, table, files.get(table)!, options)
    const [{ result }] = await tx<{ result: Record<string, Omit<TableRestore, 'table' | 'file'>> }[]>`
      select runner.restore_apply(${order}, true) as result`
    const snapshots = new Map<string, string>()
    if (!options.dryRun) {
      try {
        // The snapshot names this transaction: if it never commits (the process killed during
        // the apply), the next start finds it aborted and removes the snapshot.
        const [{ xid }] = await tx<{ xid: string }[]>`select txid_current()::text as xid`
        for (const table of order) snapshots.set(table, (await writeBackup(tx, table, options, PRE_RESTORE, { restore_xid: xid })).file)
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
      tables: order.map((table) => ({ table, file: relative(options.dir, files.get(table)!), ...result[table], snapshot: snapshots.get(table) })),
      seconds: (performance.now() - started) / 1000,
    }
  }).catch((err) => { throw asBackupValueError(err) })
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

/**
 * What an interruption left in the backup folder, removed at start: temporary files of
 * killed backups, and pre-restore snapshots of restores whose transaction never committed.
 * A table is skipped while another process holds its lock (its backup may be running).
 */
export async function cleanBackupFolder(sql: Sql, dir: string): Promise<string[]> {
  const removed: string[] = []
  const tables = (await sql<{ table_name: string }[]>`select table_name from data.dictionary_tables order by load_order`).map((r) => r.table_name)
  for (const table of tables) {
    await sql.begin(async (tx) => {
      // The key of internal.lock_table, tried rather than waited for.
      const [{ free }] = await tx<{ free: boolean }[]>`select pg_try_advisory_xact_lock(hashtext('hirebase.table'), hashtext(${table})) as free`
      if (!free) return
      for (const folder of [join(dir, table), join(dir, table, PRE_RESTORE)]) {
        for (const name of await readdir(folder).catch(() => [] as string[])) {
          const path = join(folder, name)
          if (!(await lstat(path).catch(() => undefined))?.isFile()) continue
          let orphan = name.endsWith('.tmp')
          if (!orphan && folder.endsWith(PRE_RESTORE) && name.endsWith('.avro')) {
            const xid = (await readFileMeta(path))?.['hirebase.restore_xid']?.toString()
            if (xid && /^\d+$/.test(xid)) orphan = (await tx<{ s: string | null }[]>`select txid_status(${xid}::bigint) as s`)[0].s === 'aborted'
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
