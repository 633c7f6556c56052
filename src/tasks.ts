// The long-running steps the entry points chain together, load and serve (npm start runs both in
// one process); the one-shot commands are in commands.ts.
import { lstat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { connect } from './database.ts'
import { wholeFromEnv } from './env.ts'
import { defaultJobs, formatResult, loadDirectory, type LoadOptions, type LoadResult, type Progress } from './load.ts'
import { migrate } from './migrate.ts'
import { projectRoot } from './paths.ts'
import { tablesInLoadOrder } from './tables.ts'

export const SAMPLE_DIR = resolve(projectRoot, 'data/historical')

/**
 * load.mjs --max-rejects: N rejected rows, or P% of the rows read. A percentage is kept exact,
 * as `units / scale` percent (0.57% is 57/100): in binary floating point 0.57 * 10000 is
 * 5700.000000000001, and 57 rejects of 10,000 rows would count as more than 0.57%.
 */
export interface RejectLimit {
  rows?: number
  percent?: { units: bigint; scale: bigint }
  text: string
}

export function parseRejectLimit(value: string): RejectLimit {
  const percent = /^([0-9]+)(?:\.([0-9]+))?%$/.exec(value)
  if (percent) {
    const decimals = percent[2] ?? ''
    const units = BigInt(percent[1] + decimals)
    const scale = 10n ** BigInt(decimals.length)
    if (units <= 100n * scale) return { percent: { units, scale }, text: value }
  }
  if (/^[0-9]+$/.test(value) && Number.isSafeInteger(Number(value))) return { rows: Number(value), text: value }
  throw new Error('expected a number of rows (e.g. 100) or a percentage of the rows read up to 100% (e.g. 0.5%)')
}

/** Why `rejected` of `received` rows break the limit, or undefined. */
export function overLimit(limit: RejectLimit | undefined, rejected: number, received: number): string | undefined {
  if (!limit) return undefined
  if (limit.rows !== undefined && rejected > limit.rows) return `${rejected} rows rejected, more than --max-rejects ${limit.text}`
  // rejected / received > units / scale / 100, in whole numbers
  if (limit.percent && BigInt(rejected) * 100n * limit.percent.scale > limit.percent.units * BigInt(received)) {
    return `${rejected} of ${received} rows rejected (${((rejected * 100) / received).toFixed(2)}%), more than --max-rejects ${limit.text}`
  }
  return undefined
}

const totals = (results: LoadResult[]) =>
  [results.reduce((n, r) => n + r.batch.rejected, 0), results.reduce((n, r) => n + r.batch.received, 0)] as const

const seconds = (s: number) => (s < 60 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`)

/**
 * The loader's progress: on a terminal, the phase redrawn in place (rows, rows/s, and while
 * reading an ETA from the bytes left); otherwise (or with CI set) a plain line every 10 s at
 * most, so a short load prints nothing. The database's phase is one statement: no ETA there.
 */
function loadProgress(): { progress: Progress; clear: () => void } {
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI
  const since = new Map<string, number>()
  let lastLine = performance.now()
  const progress: Progress = (table, rows, detail) => {
    const now = performance.now()
    const phase = detail?.phase ?? 'reading'
    if (!since.has(`${table}:${phase}`)) since.set(`${table}:${phase}`, now)
    const elapsed = (now - since.get(`${table}:${phase}`)!) / 1000
    let text = `${table}: ${rows.toLocaleString('en')} rows`
    if (phase === 'reading') {
      text = `${table}: reading, ${text.slice(table.length + 2)}`
      // (a rate over the first fraction of a second says nothing: 48,153,000 rows/s)
      if (elapsed >= 0.5) text += `, ${Math.round(rows / elapsed).toLocaleString('en')} rows/s`
      if (detail && detail.bytes > 0) {
        text += `, ${Math.floor((detail.bytesRead * 100) / detail.bytes)}% of ${mb(detail.bytes)}`
        if (detail.bytesRead > 0 && elapsed >= 1)
          text += `, ETA ${seconds(((detail.bytes - detail.bytesRead) * elapsed) / detail.bytesRead)}`
      }
    } else if (phase === 'validating') {
      // One statement validates, inserts and checks the references: its time left is estimated
      // from the table's last loads (runner.validation_rate), when there are any.
      const estimate = detail?.estimate
      text = `${table}: validating, inserting and checking references of ${rows.toLocaleString('en')} rows in the database, ${seconds(elapsed)} so far`
      if (estimate !== undefined) {
        text +=
          elapsed < estimate
            ? `, ETA ${seconds(estimate - elapsed)} (at the ${Math.round(rows / estimate).toLocaleString('en')} rows/s of the last loads)`
            : `, longer than the last loads (${seconds(estimate)})`
      }
    } else if (phase === 'validating-shares') {
      text = `${table}: validating ${rows.toLocaleString('en')} rows on several connections, ${seconds(elapsed)} so far`
    } else {
      text = `${table}: inserting, logging rejects and checking references of ${rows.toLocaleString('en')} rows in one statement, ${seconds(elapsed)} so far`
    }
    if (tty) process.stderr.write(`\r\x1b[K${text}`)
    else if (now - lastLine >= 10_000) {
      lastLine = now
      process.stderr.write(`${text}\n`)
    }
  }
  return {
    progress,
    clear: () => {
      if (tty) process.stderr.write('\r\x1b[K')
    },
  }
}

export interface LoadCommandOptions extends Omit<LoadOptions, 'progress' | 'url'> {
  /** Validate everything, print the verdict, write nothing (load.mjs --dry-run). */
  dryRun?: boolean
  /** Above it, exit 3 with the whole load rolled back (load.mjs --max-rejects). */
  maxRejects?: RejectLimit
}

/** A rollback asked for (a dry run, too many rejects), not a failure. */
const ROLLBACK = Symbol('rollback')

export async function loadSamples(url: string, dir = SAMPLE_DIR, options: LoadCommandOptions = {}): Promise<LoadResult[]> {
  const { dryRun = false, maxRejects, ...loadOptions } = options
  await migrate(url)
  const sql = connect(url, { max: 1 })
  const { progress, clear } = loadProgress()
  try {
    console.log(`${dryRun ? 'checking (dry run, nothing is written)' : 'loading'} ${resolve(dir)}`)
    // Large files on several connections; not with --dry-run or --max-rejects, whose one
    // transaction other connections cannot see into (load.ts).
    loadOptions.jobs ??= await defaultJobs(sql)
    const tables = await tablesInLoadOrder(sql)
    const missing = (
      await Promise.all(
        tables.map((t) =>
          lstat(join(dir, `${t}.csv`)).then(
            () => '',
            () => `${t}.csv`,
          ),
        ),
      )
    ).filter(Boolean)
    if (missing.length && missing.length < tables.length) {
      process.stderr.write(
        `warning: ${resolve(dir)} has no ${missing.join(', ')}: ${missing.length > 1 ? 'those tables are' : 'that table is'} not loaded\n`,
      )
    }
    let results: LoadResult[] = []
    if (dryRun || maxRejects) {
      // One transaction for the whole load: the verdict sees the earlier files' rows (employees
      // reference departments and jobs), and a rollback leaves nothing behind.
      await sql
        .begin(async (tx) => {
          results = await loadDirectory(tx, dir, { ...loadOptions, progress }).catch((err: Error & { committed?: LoadResult[] }) => {
            delete err.committed
            err.message += '\nnothing was written (the whole load is one transaction)'
            throw err
          })
          if (dryRun || overLimit(maxRejects, ...totals(results))) throw ROLLBACK
        })
        .catch((err) => {
          if (err !== ROLLBACK) throw err
        })
    } else {
      results = await loadDirectory(sql, dir, { ...loadOptions, url, progress }).catch((err: Error & { committed?: LoadResult[] }) => {
        clear()
        // Each file is its own transaction: say which ones are in before the one that failed.
        for (const r of err.committed ?? []) console.log(`${formatResult(r)}\n  (committed)`)
        if (err.committed?.length)
          err.message += `\n${err.committed.map((r) => `${r.table}.csv`).join(', ')} ${err.committed.length > 1 ? 'were' : 'was'} loaded and committed before this failure; the failed file changed nothing`
        throw err
      })
    }
    clear()
    const over = overLimit(maxRejects, ...totals(results))
    // (above --max-rejects, rolled back as a dry run is)
    for (const r of results) console.log(formatResult(r, dryRun || Boolean(over)))
    if (over) throw Object.assign(new Error(`${over}: the load was rolled back, nothing was written`), { exitCode: 3 })
    const withRejects = results.filter((r) => r.batch.rejected > 0).map((r) => r.batch.batch_id)
    if (dryRun) console.log('dry run: nothing was written (rolled back)')
    else if (withRejects.length) {
      console.log(
        `rejected rows and their reasons: select * from ingest_rejects where batch_id ${withRejects.length > 1 ? `in (${withRejects.join(', ')})` : `= ${withRejects[0]}`} order by batch_id, position`,
      )
    }
    return results
  } finally {
    clear()
    await sql.end()
  }
}

/**
 * Serves the API, and runs queued backups, until `shutdown` fires: then stops accepting,
 * finishes in-flight requests and the backup in progress, closes the pool.
 */
export async function serve(url: string, shutdown: AbortSignal): Promise<void> {
  const { buildServer, checkListenAddress, limitsFromEnv, listFromEnv, tokenFromEnv } = await import('./server.ts')
  const { backupDirFromEnv, cleanBackupFolder, databaseFolder, keepFromEnv } = await import('./backup/folders.ts')
  const { maxBlockBytesFromEnv } = await import('./backup/read.ts')
  const { apiConnection, embeddedApiPasswordFile } = await import('./roles.ts')
  const host = process.env.HOST ?? '127.0.0.1'
  const port = wholeFromEnv('PORT', 8000, { min: 0, max: 65535 }) // 0: any free port (tests run several servers)
  const token = tokenFromEnv('API_TOKEN')
  const readToken = tokenFromEnv('READ_TOKEN') ?? (process.env.API_TOKEN_READS === '1' ? token : undefined)
  if (process.env.API_TOKEN_READS === '1' && !token) throw new Error('API_TOKEN_READS=1 closes reads with API_TOKEN, which is not set')
  checkListenAddress(host, token)
  maxBlockBytesFromEnv() // a bad value is refused at start, not at the first restore
  const api = await apiConnection(url, {
    apiUrl: process.env.API_DATABASE_URL || undefined,
    passwordFile: process.env.DATABASE_URL ? undefined : embeddedApiPasswordFile(),
  })
  if (api.warning) process.stderr.write(`\n${'!'.repeat(78)}\n${api.warning}\n${'!'.repeat(78)}\n\n`)
  const { app, sql, runner } = await buildServer({
    databaseUrl: url,
    api,
    token,
    readToken,
    host,
    logLevel: process.env.LOG_LEVEL,
    backupDir: backupDirFromEnv(),
    backupKeep: keepFromEnv(),
    limits: limitsFromEnv(),
    allowedHosts: listFromEnv(process.env.ALLOWED_HOSTS),
    allowedOrigins: listFromEnv(process.env.ALLOWED_ORIGINS),
  })
  // A failure before serving (a port in use, a leftover it cannot judge) must end the command,
  // not leave it waiting on its open pools.
  try {
    // What an interrupted backup or restore left behind (on the runner's pool: it takes the tables' locks).
    const removed = await cleanBackupFolder(runner, databaseFolder(backupDirFromEnv(), api.roles.database))
    if (removed.length) app.log.info({ removed }, 'removed leftovers of interrupted backups and restores')
    await app.listen({ host, port })
  } catch (err) {
    await app.close()
    await sql.end({ timeout: 5 })
    throw err
  }
  const { startBackupWorker } = await import('./worker.ts')
  const worker = await startBackupWorker(runner, {
    dir: databaseFolder(backupDirFromEnv(), api.roles.database),
    keep: keepFromEnv(),
    log: (msg, fields) => app.log.info(fields, msg),
  })
  const { startHousekeeping } = await import('./housekeeping.ts')
  const housekeeper = await startHousekeeping(url, (msg, fields) => app.log.info(fields, msg))
  const { peersKnown } = await import('./api/peer.ts')
  console.log(
    `API on http://${host.includes(':') ? `[${host}]` : host}:${(app.server.address() as { port: number }).port}` +
      ` (browse it at /docs, OpenAPI: /openapi.json; database login ${api.how}; ${access(token, readToken, peersKnown())})`,
  )
  if (!shutdown.aborted) await new Promise((resolve) => shutdown.addEventListener('abort', resolve, { once: true }))
  await worker.stop() // lets a backup in progress finish (the runner's pool closes with the app)
  await app.close()
  await housekeeper.stop()
  await sql.end({ timeout: 5 })
}

/** Who may call the API, for the start-up line. */
function access(token: string | undefined, readToken: string | undefined, peersKnown: boolean): string {
  if (token)
    return `writes need the bearer token${readToken ? ', reads too' : ''}${peersKnown ? ', and so does every call of another local user' : ''}`
  return peersKnown
    ? 'open to this OS user only: set API_TOKEN to share it with other local users'
    : 'open to every local user (this system does not say who connects): set API_TOKEN to require a token'
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MB`
