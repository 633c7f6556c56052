// What every entry point shares: find the database, run, report errors plainly, clean up.
import { openDatabase, stopStartingServer, type Database } from './database.ts'

/** A PostgreSQL error as the driver hands it over. */
interface PgError extends Error {
  code?: string
  detail?: string
  hint?: string
}

/** What to do when the database cannot be reached or logged in to (the driver says only what failed). */
const CONNECT_HINTS: Record<string, string> = {
  ECONNREFUSED: "is PostgreSQL running at DATABASE_URL's host and port? (unset DATABASE_URL to use the embedded one)",
  ENOTFOUND: "DATABASE_URL's host name is not known: check it (unset DATABASE_URL to use the embedded one)",
  '28P01': 'check the user and password in DATABASE_URL (a password with @, : or / is written %40, %3A, %2F)',
  '3D000': 'create that database (createdb <name>), or name an existing one at the end of DATABASE_URL',
}

export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const e = err as PgError
  const lines = [e.code && /^[0-9A-Z]{5}$/.test(e.code) ? `${e.message} [${e.code}]` : e.message]
  if (e.detail) lines.push(`detail: ${e.detail}`)
  const hint =
    e.hint ??
    (e.code === '3F000' && /schema "(report|api|runner|data|internal)" does not exist/.test(e.message)
      ? 'the database is not migrated yet: npx zx scripts/migrate.mjs (load.mjs and npm start migrate too)'
      : e.code && process.env.DATABASE_URL
        ? CONNECT_HINTS[e.code]
        : undefined)
  if (hint) lines.push(`hint: ${hint}`)
  return lines.join('\n')
}

/**
 * Runs `task` against the configured database (DATABASE_URL or the embedded one),
 * stops an embedded server this process started, and sets the exit code.
 * On SIGINT/SIGTERM a task that takes `shutdown` (a long-running server) is asked to
 * finish and exits 0; any other task is cut short with exit code 130.
 */
export async function run(task: (db: Database, shutdown: AbortSignal) => Promise<void>): Promise<void> {
  let db: Database | undefined
  const shutdown = new AbortController()
  const onSignal = async (signal: string) => {
    if (task.length >= 2 && !shutdown.signal.aborted) {
      process.stderr.write(`${signal}: shutting down\n`)
      return shutdown.abort(signal)
    }
    process.stderr.write(`\n${signal}: stopping\n`)
    // Work in flight dies with the process (an open transaction rolls back); the embedded
    // server this process started, even half-way, is stopped first, for a few seconds at most.
    const stopping = db ? db.stop() : stopStartingServer()
    await Promise.race([stopping.catch(() => {}), new Promise((r) => setTimeout(r, 5000))])
    process.exit(130)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // Output piped into a reader that has gone (`... | head`): the rest is dropped and the task
  // ends as it would have. Unhandled, the first write after it crashed the process, leaving an
  // embedded server running.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err
  })
  try {
    db = await openDatabase()
    await task(db, shutdown.signal)
  } catch (err) {
    process.stderr.write(`error: ${describeError(err)}\n`)
    // (an error may carry its own: load.mjs exits 3 above --max-rejects). A table the database
    // does not know (IBTAB) can only come from the command line here: a bad argument, exit 2.
    const e = err as { exitCode?: number; code?: string }
    process.exitCode = e.exitCode ?? (e.code === 'IBTAB' ? 2 : 1)
  } finally {
    await db?.stop()
  }
}
