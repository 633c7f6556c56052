// The API's bounded waits and caps (docs/operations.md, "Every wait is bounded"), read from the environment, and the
// gate that shares the database pool between requests.
import { wholeFromEnv } from '../env.ts'

/** The largest request body in bytes (named in a 413). */
export const BODY_LIMIT = 2 * 1024 * 1024

/** Every wait the API may meet, bounded (docs/operations.md, "Every wait is bounded"). */
export interface Limits {
  /** Database statement_timeout per request (STATEMENT_TIMEOUT_MS); backups and restores lift it. */
  statementTimeoutMs: number
  /** Database lock_timeout per request (LOCK_TIMEOUT_MS): a table lock waited for longer is a 503. */
  lockTimeoutMs: number
  /** Connections in the pool (POOL_SIZE); two are kept for the backup runner. */
  poolSize: number
  /** How long a request waits for a free connection (POOL_TIMEOUT_MS) before a 503. */
  poolTimeoutMs: number
  /** Idle socket timeout (HTTP_CONNECTION_TIMEOUT_MS). */
  connectionTimeoutMs: number
  /** Time to receive a whole request, body included (HTTP_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs: number
  /** Backups running at once through the API (BACKUP_CONCURRENCY); one per table in any case. */
  backupConcurrency: number
  /** Requests per client (IP address) per window (RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_SECONDS); more get 429 with Retry-After. */
  rateLimitMax: number
  rateLimitWindowSeconds: number
  /** The caps the database's triggers read (runner.set_caps writes them to internal.caps at start;
   *  sql/procedures/760-internal.bounds.sql): a rejected row's stored payload, the ingest log per
   *  table, the idempotency keys. Only the caps whose variable is set: the defaults are the database's. */
  caps: Record<string, string>
}

const LIMIT_ENV: Record<Exclude<keyof Limits, 'caps'>, [string, number]> = {
  statementTimeoutMs: ['STATEMENT_TIMEOUT_MS', 15_000],
  lockTimeoutMs: ['LOCK_TIMEOUT_MS', 5_000],
  poolSize: ['POOL_SIZE', 10],
  poolTimeoutMs: ['POOL_TIMEOUT_MS', 3_000],
  connectionTimeoutMs: ['HTTP_CONNECTION_TIMEOUT_MS', 60_000],
  requestTimeoutMs: ['HTTP_REQUEST_TIMEOUT_MS', 30_000],
  backupConcurrency: ['BACKUP_CONCURRENCY', 2],
  rateLimitMax: ['RATE_LIMIT_MAX', 600],
  rateLimitWindowSeconds: ['RATE_LIMIT_WINDOW_SECONDS', 60],
}

export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): Limits {
  const limits = { caps: {} } as Limits
  for (const [key, [name, fallback]] of Object.entries(LIMIT_ENV) as [Exclude<keyof Limits, 'caps'>, [string, number]][]) {
    limits[key] = wholeFromEnv(name, fallback, {}, env)
  }
  const caps = {
    reject_payload_max_bytes: wholeFromEnv('REJECT_PAYLOAD_MAX_BYTES', 0, {}, env),
    ingest_log_max_batches: wholeFromEnv('INGEST_LOG_MAX_BATCHES', 0, {}, env),
    ingest_log_max_rejects: wholeFromEnv('INGEST_LOG_MAX_REJECTS', 0, {}, env),
    idempotency_max_keys: wholeFromEnv('IDEMPOTENCY_MAX_KEYS', 0, {}, env),
  }
  for (const [cap, value] of Object.entries(caps)) if (value) limits.caps[cap] = String(value)
  if (limits.poolSize < 3)
    throw new Error(`POOL_SIZE must be at least 3 (two connections are kept for the backup runner), got ${limits.poolSize}`)
  return limits
}

export type Gate = ReturnType<typeof gate>

/** A counting semaphore whose waits are bounded: the requests' share of the pool. */
export function gate(size: number) {
  let used = 0
  const waiting: (() => void)[] = []
  return {
    size,
    get used() {
      return used
    },
    get waiting() {
      return waiting.length
    },
    async enter(timeoutMs: number): Promise<void> {
      if (used < size) {
        used++
        return
      }
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          clearTimeout(timer)
          used++
          resolve()
        }
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(wake), 1)
          reject(Object.assign(new Error(`all ${size} database connections stayed busy for ${timeoutMs} ms`), { code: 'POOL_TIMEOUT' }))
        }, timeoutMs)
        waiting.push(wake)
      })
    },
    leave() {
      used--
      waiting.shift()?.()
    },
  }
}
