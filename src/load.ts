// The historical CSV load: each file is streamed with COPY into the session's staging
// table and validated there by the same engine as ingest_batch, in one transaction per
// file, so a failed file leaves the database as it was.
// Long, as one file: RecordLimits (the byte-level bounds on a record) serves only this load.
import { constants, type Stats } from 'node:fs'
import { lstat, open, stat, type FileHandle } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { Transform, type TransformCallback } from 'node:stream'
import { copyIn } from './copy.ts'
import { CopyLines, csvParser } from './csv.ts'
import { MarkInvalidUtf8 } from './encoding.ts'
import { wholeFromEnv } from './env.ts'
import type { Queryable, Sql, Tx } from './database.ts'
import { tablesInLoadOrder } from './tables.ts'

export interface IngestBatch {
  batch_id: string
  table_name: string
  source: string
  received: number
  inserted: number
  unchanged: number
  rejected: number
}

export interface LoadResult {
  table: string
  file: string
  batch: IngestBatch
  /** Rejected rows per reason code, most frequent first. */
  reasons: { reason: string; rows: number }[]
  seconds: number
}

/** What a load is doing: reading the file (COPY into staging), validating and inserting in the
 *  database (one statement), re-checking foreign keys. */
export type Phase = 'reading' | 'validating' | 'rechecking'
export type Progress = (table: string, rowsRead: number, detail?: { phase: Phase; bytesRead: number; bytes: number }) => void

export interface LoadOptions {
  progress?: Progress
  /** Open a symbolic link's target (load.mjs --follow-symlinks); refused by default. */
  followSymlinks?: boolean
  /** Abandons the load (rolled back) when it fires: SIGINT/SIGTERM during npm start. */
  signal?: AbortSignal
  /** Bounds on one record: its bytes and its fields (LOAD_MAX_RECORD_BYTES, LOAD_MAX_FIELDS). */
  maxRecordBytes?: number
  maxFields?: number
  /** The first record of each file is a header: skipped (load.mjs --header). Without it, a
   *  first record that looks like one refuses the file. */
  header?: boolean
}

/** What a load opens: a regular file, never a FIFO, device or (unless asked) symbolic link. */
async function openRegularFile(file: string, followSymlinks: boolean): Promise<{ fh: FileHandle; before: Stats }> {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (a blocked open also blocks exit).
  const flags = constants.O_RDONLY | constants.O_NONBLOCK | (followSymlinks ? 0 : constants.O_NOFOLLOW)
  const fh = await open(file, flags).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ELOOP') throw new Error(`${file}: refused: it is a symbolic link (pass --follow-symlinks to load its target)`)
    throw err
  })
  const before = await fh.stat()
  if (!before.isFile()) {
    await fh.close()
    const kind = before.isFIFO() ? 'a FIFO' : before.isCharacterDevice() || before.isBlockDevice() ? 'a device' : before.isDirectory() ? 'a folder' : 'a socket'
    throw new Error(`${file}: refused: it is ${kind}, not a regular file`)
  }
  return { fh, before }
}

const unchanged = (a: Stats, b: Stats) => a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs

/**
 * Bounds what one record may take before the parser holds it in memory: its bytes and its
 * fields, counted on the raw bytes with the dialect's quoting (src/csv.ts): a quote opens a
 * quoted field only at the field's start, `""` inside it is a quote, and a stray quote in an
 * unquoted field is data (relax_quotes). Records end in CRLF, LF or CR.
 */
class RecordLimits extends Transform {
  bytes = 0
  private line = 1
  private recordLine = 1
  private recordBytes = 0
  private fields = 1
  private quoted = false
  private fieldStart = true
  private justClosed = false // just after a quote that justClosed a quoted field (`""` reopens it)
  private afterCr = false
  constructor(private file: string, private maxBytes: number, private maxFields: number) { super() }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let { quoted, fieldStart, justClosed, fields, recordBytes, line, afterCr } = this
    // A UTF-8 BOM before the first field is not part of it.
    const from = this.bytes === 0 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf ? 3 : 0
    this.bytes += chunk.length
    for (let i = from; i < chunk.length; i++) {
      const c = chunk[i]
      recordBytes++
      const lf = c === 0x0a && afterCr
      afterCr = c === 0x0d
      if (quoted) {
        if (c === 0x22) { quoted = false; justClosed = true }
        else if (c === 0x0a || c === 0x0d) { if (!lf) line++ }
      } else if (c === 0x22 && (fieldStart || justClosed)) {
        quoted = true; fieldStart = false; justClosed = false
      } else if (c === 0x0a || c === 0x0d) {
        if (!lf) line++
        fields = 1; recordBytes = 0; fieldStart = true; justClosed = false; this.recordLine = line
        continue
      } else if (c === 0x2c) {
        fieldStart = true; justClosed = false
        if (++fields > this.maxFields) {
          return done(new Error(`${this.file}, line ${this.recordLine}: refused: more than ${this.maxFields} fields in one record (LOAD_MAX_FIELDS)`))
        }
      } else {
        fieldStart = false; justClosed = false
      }
      if (recordBytes > this.maxBytes) {
        return done(new Error(`${this.file}, line ${this.recordLine}: refused: a record longer than ${this.maxBytes} bytes (LOAD_MAX_RECORD_BYTES)`))
      }
    }
    Object.assign(this, { quoted, fieldStart, justClosed, fields, recordBytes, line, afterCr })
    done(null, chunk)
  }
}

export async function loadFile(sql: Queryable, table: string, file: string, progressOrOptions: Progress | LoadOptions = {}): Promise<LoadResult> {
  const options = typeof progressOrOptions === 'function' ? { progress: progressOrOptions } : progressOrOptions
  const { progress, signal } = options
  const maxBytes = options.maxRecordBytes ?? wholeFromEnv('LOAD_MAX_RECORD_BYTES', 1024 * 1024)
  const maxFields = options.maxFields ?? wholeFromEnv('LOAD_MAX_FIELDS', 100)
  const started = performance.now()
  const lines = new CopyLines()
  let timer: NodeJS.Timeout | undefined
  let phase: Phase = 'reading'
  let limits: RecordLimits | undefined
  const { fh, before } = await openRegularFile(file, options.followSymlinks ?? false)
  const report = () => progress?.(table, lines.rows, { phase, bytesRead: limits?.bytes ?? 0, bytes: before.size })
  if (progress) timer = setInterval(report, 250)
  // Inside a caller's transaction (load.mjs --dry-run, --max-rejects), a savepoint.
  const transaction = <T>(fn: (tx: Tx) => Promise<T>) => ('savepoint' in sql ? sql.savepoint(fn) : sql.begin(fn)) as Promise<T>
  try {
    return await transaction(async (tx) => {
      await tx`select api.open_ingest_input()`
      const copy = tx`copy pg_temp.ingest_input (position, fields, unreadable) from stdin`
      const input = fh.createReadStream({ autoClose: false, start: 0 })
      limits = new RecordLimits(file, maxBytes, maxFields)
      const interrupt = () => input.destroy(new Error(`${file}: load interrupted (${String(signal?.reason ?? 'signal')}): nothing loaded`))
      signal?.addEventListener('abort', interrupt, { once: true })
      try {
        if (signal?.aborted) interrupt()
        await copyIn(copy, input, limits, new MarkInvalidUtf8(), csvParser(), lines).catch((err: Error & { lines?: number }) => {
          if (err.message.startsWith(file)) throw err
          throw new Error(`${file}${err.lines ? `, line ${err.lines}` : ''}: ${err.message}`, { cause: err })
        })
      } finally {
        signal?.removeEventListener('abort', interrupt)
      }
      // A file that changed while it was read (truncated, appended, replaced) is not what was
      // asked for: the transaction rolls back.
      const after = await fh.stat()
      const now = await stat(file).catch(() => undefined)
      if (!unchanged(before, after) || !now || !unchanged(before, now) || limits.bytes !== before.size) {
        throw new Error(`${file} changed while it was read (${before.size} bytes when opened, ${limits.bytes} read, ` +
          `${now ? `${now.size} now` : 'gone now'}): nothing loaded; load it again once it is complete`)
      }
      await firstRecord(tx, table, file, options.header ?? false)
      phase = 'validating'
      report()
      const [batch] = await tx<IngestBatch[]>`select * from api.ingest_staged(${table}, 'csv', true)`
      const reasons = await tx<{ reason: string; rows: number }[]>`select reason, rows from runner.reject_reasons(${batch.batch_id})`
      return { table, file, batch, reasons: [...reasons], seconds: (performance.now() - started) / 1000 }
    })
  } finally {
    clearInterval(timer)
    await fh.close()
  }
}

/** Skips the staged first record when it is a header (`header`), or refuses one that looks like it. */
async function firstRecord(tx: Tx, table: string, file: string, header: boolean): Promise<void> {
  const [first] = await tx<{ position: string; fields: string[] | null }[]>`select position, fields from pg_temp.ingest_input order by position limit 1`
  if (!first) return
  if (header) {
    await tx`delete from pg_temp.ingest_input where position = ${first.position}`
    return
  }
  const [{ header: looks }] = await tx<{ header: boolean | null }[]>`select runner.looks_like_header(${table}, ${first.fields}) as header`
  if (looks && first.fields) {
    throw new Error(`${file}, line ${first.position}: refused: it looks like a header (${first.fields.join(',')}), and the files have none: ` +
      'pass --header to skip the first line of each file, or remove it')
  }
}

/** Loads `<table>.csv` from `dir` for every table that has one, in load order. */
export async function loadDirectory(sql: Queryable, dir: string, progressOrOptions: Progress | LoadOptions = {}): Promise<LoadResult[]> {
  const tables = await tablesInLoadOrder(sql)
  // lstat: a symbolic link counts as there (and is then refused, not silently skipped).
  const present = await Promise.all(tables.map((table) => lstat(resolve(join(dir, `${table}.csv`))).then(() => true, () => false)))
  const files = tables.map((table) => ({ table, file: resolve(join(dir, `${table}.csv`)) })).filter((_, i) => present[i])
  if (files.length === 0) throw new Error(`no CSV files to load in ${resolve(dir)}: expected ${tables.map((t) => `${t}.csv`).join(', ')}`)
  const results: LoadResult[] = []
  for (const { table, file } of files) {
    // A failure carries the files committed before it (`committed`), for the report.
    results.push(await loadFile(sql, table, file, progressOrOptions).catch((err) => { throw Object.assign(err, { committed: [...results] }) }))
  }
  return results
}

export function formatResult(r: LoadResult): string {
  const b = r.batch
  const rate = Math.round(b.received / Math.max(r.seconds, 0.001))
  const head = `${r.table}: ${b.received} rows read, ${b.inserted} inserted, ${b.unchanged} unchanged, ${b.rejected} rejected` +
    ` (batch ${b.batch_id}, ${r.seconds.toFixed(2)} s, ${rate} rows/s)`
  const reasons = r.reasons.map((x) => `    ${x.reason}: ${x.rows}`)
  return [head, ...reasons].join('\n')
}
