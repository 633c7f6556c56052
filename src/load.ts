// The historical CSV load: each file is streamed with COPY into the session's staging
// table and validated there by the same engine as ingest_batch, in one transaction per
// file, so a failed file leaves the database as it was.
// Long, as one file: RecordLimits (the byte-level bounds on a record) serves only this load.
//
// A large file (LOAD_PARALLEL_MIN_BYTES) is validated on K connections at once (--jobs K),
// still all or nothing. Node reads and parses the file once and splits the records by their
// id's value, so every copy of one id meets in one worker and the duplicate check stays
// local. Each worker COPYs its share into its own staging table and validates it with the
// database's statement (one implementation of the rules for every path) in its own
// transaction, keeping the verdict in an unlogged table named after the load, committed.
// Then ONE statement (runner.finish_load) logs the batch and the rejects and inserts every
// worker's valid rows: the target table and the ingest log change only there. The table's
// lock is held by the coordinator's session from start to end, so what the workers judged
// (ids already in the table, references) still holds when it is written. A load killed
// before that statement leaves only its verdict tables, which the next load removes
// (sql/procedures/204-ingest.parallel.sql). Why not workers sharing one snapshot and
// committing together: without two-phase commit (max_prepared_transactions is 0 on most
// servers and on the embedded one) K commits cannot be made atomic, and a kill between them
// would leave part of the file.
import { constants, type Stats } from 'node:fs'
import { lstat, open, stat, type FileHandle } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { once } from 'node:events'
import { availableParallelism } from 'node:os'
import { Transform, Writable, type TransformCallback } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { copyWritable } from './copy.ts'
import { breaksIn, copyLine, CopyLines, csvParser, isBlank } from './csv.ts'
import { MarkInvalidUtf8 } from './encoding.ts'
import { wholeFromEnv } from './env.ts'
import { connect, type Queryable, type Sql, type Tx } from './database.ts'
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

/** What a load is doing: reading the file (COPY into staging); on one connection, validating,
 *  inserting and checking references (one statement); in a parallel load, validating the shares
 *  on K connections, then writing the verdicts (one statement: inserts, rejects, references). */
export type Phase = 'reading' | 'validating' | 'validating-shares' | 'writing'
export type Progress = (
  table: string,
  rowsRead: number,
  /** estimate: the seconds the validating statement should take, from the table's last loads (runner.validation_rate). */
  detail?: { phase: Phase; bytesRead: number; bytes: number; estimate?: number },
) => void

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
  /** Validate a file of LOAD_PARALLEL_MIN_BYTES or more on this many connections at once
   *  (load.mjs --jobs); needs `url`. Not inside a caller's transaction: other connections
   *  cannot see its rows. */
  jobs?: number
  /** The database the workers connect to (the coordinator's). */
  url?: string
}

/** load.mjs --jobs by default: the server's CPU count (when it may read /proc; else this
 *  machine's), at most 4. */
export async function defaultJobs(sql: Queryable): Promise<number> {
  // (asked first: a refused call would put an error in the server's log at every load)
  const [may] = await sql<
    { read: boolean }[]
  >`select has_function_privilege('pg_read_file(text)', 'execute') and pg_has_role('pg_read_server_files', 'member') as read`
  const [row] = may.read
    ? await sql<
        { cpus: number }[]
      >`select count(*)::int as cpus from regexp_matches(pg_read_file('/proc/cpuinfo'), '^processor', 'gm')`.catch(() => [])
    : []
  return Math.max(1, Math.min(4, row?.cpus || availableParallelism()))
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
    const kind = before.isFIFO()
      ? 'a FIFO'
      : before.isCharacterDevice() || before.isBlockDevice()
        ? 'a device'
        : before.isDirectory()
          ? 'a folder'
          : 'a socket'
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
  constructor(
    private file: string,
    private maxBytes: number,
    private maxFields: number,
  ) {
    super()
  }

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
        if (c === 0x22) {
          quoted = false
          justClosed = true
        } else if (c === 0x0a || c === 0x0d) {
          if (!lf) line++
        }
      } else if (c === 0x22 && (fieldStart || justClosed)) {
        quoted = true
        fieldStart = false
        justClosed = false
      } else if (c === 0x0a || c === 0x0d) {
        if (!lf) line++
        fields = 1
        recordBytes = 0
        fieldStart = true
        justClosed = false
        this.recordLine = line
        continue
      } else if (c === 0x2c) {
        fieldStart = true
        justClosed = false
        if (++fields > this.maxFields) {
          return done(
            new Error(`${this.file}, line ${this.recordLine}: refused: more than ${this.maxFields} fields in one record (LOAD_MAX_FIELDS)`),
          )
        }
      } else {
        fieldStart = false
        justClosed = false
      }
      if (recordBytes > this.maxBytes) {
        return done(
          new Error(`${this.file}, line ${this.recordLine}: refused: a record longer than ${this.maxBytes} bytes (LOAD_MAX_RECORD_BYTES)`),
        )
      }
    }
    Object.assign(this, { quoted, fieldStart, justClosed, fields, recordBytes, line, afterCr })
    done(null, chunk)
  }
}

export async function loadFile(
  sql: Queryable,
  table: string,
  file: string,
  progressOrOptions: Progress | LoadOptions = {},
): Promise<LoadResult> {
  const options = typeof progressOrOptions === 'function' ? { progress: progressOrOptions } : progressOrOptions
  const { progress, signal } = options
  const maxBytes = options.maxRecordBytes ?? wholeFromEnv('LOAD_MAX_RECORD_BYTES', 1024 * 1024)
  const maxFields = options.maxFields ?? wholeFromEnv('LOAD_MAX_FIELDS', 100)
  const minParallel = wholeFromEnv('LOAD_PARALLEL_MIN_BYTES', 16 * 1024 * 1024)
  const started = performance.now()
  const { fh, before } = await openRegularFile(file, options.followSymlinks ?? false)
  const limits = new RecordLimits(file, maxBytes, maxFields)
  const state: LoadState = { phase: 'reading', rows: () => 0, report: () => {} }
  state.report = () =>
    progress?.(table, state.rows(), { phase: state.phase, bytesRead: limits.bytes, bytes: before.size, estimate: state.estimate })
  const timer = progress ? setInterval(state.report, 250) : undefined
  const read = (...sinks: NodeJS.WritableStream[]) => readInto(file, fh, before, limits, signal, sinks)
  const jobs = options.jobs ?? 1
  try {
    if (jobs > 1 && options.url && 'reserve' in sql && before.size >= minParallel) {
      const { batch, reasons } = await loadParallel(sql, options.url, jobs, table, file, options.header ?? false, state, read)
      return { table, file, batch, reasons, seconds: (performance.now() - started) / 1000 }
    }
    // Inside a caller's transaction (load.mjs --dry-run, --max-rejects), a savepoint.
    const transaction = <T>(fn: (tx: Tx) => Promise<T>) => ('savepoint' in sql ? sql.savepoint(fn) : sql.begin(fn)) as Promise<T>
    return await transaction(async (tx) => {
      await tx`select api.open_ingest_input()`
      const lines = new CopyLines()
      state.rows = () => lines.rows
      await read(lines, await copyWritable(tx`copy pg_temp.ingest_input (position, fields, unreadable) from stdin`))
      await firstRecord(tx, table, file, options.header ?? false)
      if (progress) {
        const [{ rate }] = await tx<{ rate: number | null }[]>`select runner.validation_rate(${table}) as rate`
        if (rate) state.estimate = lines.rows / rate
      }
      state.phase = 'validating'
      state.report()
      const [batch] = await tx<IngestBatch[]>`select * from api.ingest_staged(${table}, 'csv', true)`
      const reasons = await tx<{ reason: string; rows: number }[]>`select reason, rows from runner.reject_reasons(${batch.batch_id})`
      return { table, file, batch, reasons: [...reasons], seconds: (performance.now() - started) / 1000 }
    })
  } finally {
    clearInterval(timer)
    await fh.close()
  }
}

interface LoadState {
  phase: Phase
  estimate?: number
  rows: () => number
  report: () => void
}

/** Streams the file through its bounds, the UTF-8 check and the parser into `sinks`; then
 *  refuses a file that changed while it was read (truncated, appended, replaced): it is not
 *  what was asked for, and the caller's transaction rolls back. */
async function readInto(
  file: string,
  fh: FileHandle,
  before: Stats,
  limits: RecordLimits,
  signal: AbortSignal | undefined,
  sinks: NodeJS.WritableStream[],
): Promise<void> {
  const input = fh.createReadStream({ autoClose: false, start: 0 })
  const interrupt = () => input.destroy(new Error(`${file}: load interrupted (${String(signal?.reason ?? 'signal')}): nothing loaded`))
  signal?.addEventListener('abort', interrupt, { once: true })
  try {
    if (signal?.aborted) interrupt()
    await pipeline([input, limits, new MarkInvalidUtf8(), csvParser(), ...sinks]).catch((err: Error & { lines?: number }) => {
      if (err.message.startsWith(file)) throw err
      throw new Error(`${file}${err.lines ? `, line ${err.lines}` : ''}: ${err.message}`, { cause: err })
    })
  } finally {
    signal?.removeEventListener('abort', interrupt)
  }
  const after = await fh.stat()
  const now = await stat(file).catch(() => undefined)
  if (!unchanged(before, after) || !now || !unchanged(before, now) || limits.bytes !== before.size) {
    throw new Error(
      `${file} changed while it was read (${before.size} bytes when opened, ${limits.bytes} read, ` +
        `${now ? `${now.size} now` : 'gone now'}): nothing loaded; load it again once it is complete`,
    )
  }
}

/** Skips the staged first record when it is a header (`header`), or refuses one that looks like it. */
async function firstRecord(tx: Tx, table: string, file: string, header: boolean): Promise<void> {
  const [first] = await tx<
    { position: string; fields: string[] | null }[]
  >`select position, fields from pg_temp.ingest_input order by position limit 1`
  if (!first) return
  if (first.fields) await refuseHeader(tx, table, file, first.position, first.fields, header)
  if (header) await tx`delete from pg_temp.ingest_input where position = ${first.position}`
}

/**
 * Refuses a file whose first record looks like a header when the files have none (the rule:
 * runner.looks_like_header), or like data when --header says they have one (runner.looks_like_record):
 * skipped, that row would be lost without a word.
 */
async function refuseHeader(
  sql: Queryable,
  table: string,
  file: string,
  line: number | string,
  fields: string[],
  header = false,
): Promise<void> {
  const [{ wrong }] = header
    ? await sql<{ wrong: boolean | null }[]>`select runner.looks_like_record(${table}, ${fields}) as wrong`
    : await sql<{ wrong: boolean | null }[]>`select runner.looks_like_header(${table}, ${fields}) as wrong`
  if (wrong && header) {
    throw new Error(
      `${file}, line ${line}: refused: --header skips the first line, but it looks like data (${fields.join(',')}), ` +
        'not a header: drop --header for files without one',
    )
  }
  if (wrong) {
    throw new Error(
      `${file}, line ${line}: refused: it looks like a header (${fields.join(',')}), and the files have none: ` +
        'pass --header to skip the first line of each file, or remove it',
    )
  }
}

/**
 * Which worker gets a record: its id field's value modulo K, read from the field's ASCII
 * digits without leading zeros. Every spelling of one valid id (" 7", "007") so goes to the
 * same worker. Not a rule: a field that is no valid id lands anywhere and is judged there.
 */
export function shareOf(field: string, shares: number): number {
  let share = 0
  for (let i = 0; i < field.length; i++) {
    const c = field.charCodeAt(i)
    if (c >= 48 && c <= 57) share = (share * 10 + c - 48) % shares
  }
  return share
}

/** Routes parsed records, as COPY lines, to the workers' COPY streams (shareOf). */
class ShareLines extends Writable {
  rows = 0
  private nextLine = 1
  private first = true
  private pending: string[]
  /** keep(record, line): false skips the first record (a header). */
  constructor(
    private shares: Writable[],
    private keyIndex: number,
    private keep: (record: string[], line: number) => boolean,
  ) {
    super({ objectMode: true })
    this.pending = shares.map(() => '')
    for (const share of shares) share.on('error', (err) => this.destroy(err))
  }

  override _write(record: string[], _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const line = this.nextLine
    this.nextLine += 1 + breaksIn(record)
    if (isBlank(record)) return done()
    if (this.first) {
      this.first = false
      try {
        if (!this.keep(record, line)) return done()
      } catch (err) {
        return done(err as Error)
      }
    }
    const k = shareOf(record[this.keyIndex] ?? '', this.shares.length)
    this.rows++
    this.pending[k] += copyLine(line, record)
    if (this.pending[k].length < 65536) return done()
    const chunk = this.pending[k]
    this.pending[k] = ''
    if (this.shares[k].write(chunk)) done()
    else once(this.shares[k], 'drain').then(() => done(), done)
  }

  override _final(done: (err?: Error | null) => void): void {
    this.shares.forEach((share, k) => share.end(this.pending[k] || undefined))
    Promise.all(this.shares.map((share) => finished(share))).then(() => done(), done)
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (err) for (const share of this.shares) share.destroy(err)
    done(err)
  }
}

/**
 * A parallel load of one file (see the top of this file): the coordinator's session holds the
 * table; `jobs` workers, each in its own transaction, stage and validate their share; one
 * statement writes all the verdicts.
 */
async function loadParallel(
  sql: Sql,
  url: string,
  jobs: number,
  table: string,
  file: string,
  header: boolean,
  state: LoadState,
  read: (...sinks: NodeJS.WritableStream[]) => Promise<void>,
): Promise<{ batch: IngestBatch; reasons: { reason: string; rows: number }[] }> {
  const coordinator = await sql.reserve()
  const pool = connect(url, { max: jobs })
  let load: number | undefined
  // The workers wait here after staging: validated only once the whole file was read as it is.
  let release!: () => void
  let abandon!: (err: Error) => void
  const readAll = new Promise<void>((resolve, reject) => {
    release = resolve
    abandon = reject
  })
  readAll.catch(() => {})
  const workers: Promise<unknown>[] = []
  try {
    ;[{ load }] = await coordinator<{ load: number }[]>`select runner.begin_load(${table}) as load`
    const [{ keyIndex }] = await coordinator<{ keyIndex: number }[]>`select runner.key_index(${table}) as "keyIndex"`
    const shares = Array.from(
      { length: jobs },
      (_, worker) =>
        new Promise<Writable>((give, fail) => {
          workers.push(
            pool
              .begin(async (tx) => {
                await tx`select api.open_ingest_input()`
                const copy = await copyWritable(tx`copy pg_temp.ingest_input (position, fields, unreadable) from stdin`)
                give(copy)
                readAll.catch((err) => copy.destroy(err)) // a failed read ends the COPY, and the transaction rolls back
                await finished(copy)
                await readAll
                await tx`select runner.stage_share(${load!}, ${table}, ${worker})`
              })
              .catch((err) => {
                fail(err)
                throw err
              }),
          )
        }),
    )
    let first: { record: string[]; line: number } | undefined
    const lines = new ShareLines(await Promise.all(shares), keyIndex, (record, line) => {
      first = { record, line }
      return !header
    })
    state.rows = () => lines.rows
    await read(lines)
    // Before the workers judge anything: a refused file is rolled back in every worker.
    if (first) await refuseHeader(coordinator, table, file, first.line, first.record, header)
    state.phase = 'validating-shares'
    state.report()
    release()
    await Promise.all(workers)
    state.phase = 'writing'
    state.report()
    const [batch] = await coordinator<IngestBatch[]>`select * from runner.finish_load(${load}, ${table}, 'csv')`
    const reasons = await coordinator<{ reason: string; rows: number }[]>`select reason, rows from runner.reject_reasons(${batch.batch_id})`
    return { batch, reasons: [...reasons] }
  } catch (err) {
    abandon(err as Error)
    await Promise.allSettled(workers)
    throw err
  } finally {
    if (load !== undefined) await coordinator`select runner.end_load(${load}, ${table})`.catch(() => {})
    coordinator.release()
    await pool.end()
  }
}

/** Loads `<table>.csv` from `dir` for every table that has one, in load order. */
export async function loadDirectory(sql: Queryable, dir: string, progressOrOptions: Progress | LoadOptions = {}): Promise<LoadResult[]> {
  const tables = await tablesInLoadOrder(sql)
  // lstat: a symbolic link counts as there (and is then refused, not silently skipped).
  const present = await Promise.all(
    tables.map((table) =>
      lstat(resolve(join(dir, `${table}.csv`))).then(
        () => true,
        () => false,
      ),
    ),
  )
  const files = tables.map((table) => ({ table, file: resolve(join(dir, `${table}.csv`)) })).filter((_, i) => present[i])
  if (files.length === 0) throw new Error(`no CSV files to load in ${resolve(dir)}: expected ${tables.map((t) => `${t}.csv`).join(', ')}`)
  const results: LoadResult[] = []
  for (const { table, file } of files) {
    // A failure carries the files committed before it (`committed`), for the report.
    results.push(
      await loadFile(sql, table, file, progressOrOptions).catch((err) => {
        throw Object.assign(err, { committed: [...results] })
      }),
    )
  }
  return results
}

export function formatResult(r: LoadResult, dryRun = false): string {
  const b = r.batch
  const rate = Math.round(b.received / Math.max(r.seconds, 0.001))
  // A rolled-back batch (a dry run, a load above --max-rejects): its number names nothing,
  // and nothing was inserted.
  const head =
    `${r.table}: ${b.received} rows read, ${b.inserted} ${dryRun ? 'would be inserted' : 'inserted'}, ${b.unchanged} unchanged, ${b.rejected} rejected` +
    ` (${dryRun ? 'rolled back' : `batch ${b.batch_id}`}, ${r.seconds.toFixed(2)} s, ${rate} rows/s)`
  const reasons = r.reasons.map((x) => `    ${x.reason}: ${x.rows}`)
  return [head, ...reasons].join('\n')
}
