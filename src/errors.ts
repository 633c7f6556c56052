// The one place where errors become HTTP statuses and `{"error": {"code", "message"}}` bodies.

/** A backup file that is missing (`backup_not_found`) or unusable (`bad_backup`). */
export class BackupFileError extends Error {
  constructor(readonly code: 'backup_not_found' | 'bad_backup' | 'disk_full' | 'backup_dir_not_writable', message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

export interface ApiError { status: number; code: string; message: string; hint?: string }

/** SQLSTATEs the procedures raise (docs/errors.md), by HTTP status and API code. */
const SQLSTATES: Record<string, [number, string]> = {
  IBTAB: [404, 'unknown_table'],
  P0002: [404, 'not_found'],
  IBKEY: [409, 'idempotency_key_reused'],
  IBORP: [409, 'would_orphan_rows'],
  '23505': [409, 'conflict'],
  '23503': [409, 'conflict'],
  IBARR: [400, 'not_an_array'],
  IBEMP: [400, 'empty_batch'],
  IBBIG: [400, 'batch_too_large'],
  '22023': [400, 'bad_request'],
  '42501': [403, 'forbidden'],
}

/** Refusals the database answers with (not raised): the request was malformed. */
const REFUSALS: Record<string, number> = {
  not_an_array: 400, empty_batch: 400, batch_too_large: 400, malformed_json: 400, malformed_csv: 400,
}

/** The database cannot be reached, is starting, or is shutting down: retry later. */
const UNAVAILABLE = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED',
  'CONNECTION_DESTROYED', '57P01', '57P02', '57P03', '53300',
])

/** Waits that ran out: the request may succeed if retried (503 with Retry-After). */
const BUSY: Record<string, [string, string]> = {
  '55P03': ['lock_timeout', 'a table this request needs stayed locked (a backup, restore or load holds it) for longer than LOCK_TIMEOUT_MS; try again shortly'],
  '57014': ['statement_timeout', 'the database did not finish this request within STATEMENT_TIMEOUT_MS; try again shortly'],
  POOL_TIMEOUT: ['pool_exhausted', 'all database connections stayed busy for longer than POOL_TIMEOUT_MS; try again shortly'],
  DATABASE_DEADLINE: ['database_timeout', 'the database did not answer in time; try again shortly'],
}

/** Errors fastify raises before a handler runs, and the runner's own. */
const FRAMEWORK: Record<string, [number, string]> = {
  backup_not_found: [404, 'backup_not_found'],
  bad_backup: [422, 'bad_backup'],
  bad_backup_value: [422, 'bad_backup_value'],
  disk_full: [507, 'disk_full'],
  backup_dir_not_writable: [500, 'backup_dir_not_writable'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'body_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'malformed_json'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed_json'],
  FST_ERR_VALIDATION: [400, 'bad_request'],
}

interface Invalid { instancePath?: string; params?: { missingProperty?: string; additionalProperty?: string } }
interface RaisedError { code?: string; message?: string; hint?: string; statusCode?: number; validation?: Invalid[]; validationContext?: string }

/** The request parameter (query, path, header or body field) a validation error is about. */
function parameterOf(e: RaisedError): string {
  const first = e.validation?.[0]
  return first?.instancePath?.split('/').filter(Boolean)[0] ?? first?.params?.missingProperty ?? first?.params?.additionalProperty ?? e.validationContext ?? 'request'
}

/**
 * A value the database refused (22xxx) while a backup file was being read or applied: the
 * file's fault, not the request's.
 */
export function asBackupValueError(err: unknown): unknown {
  const e = err as RaisedError
  return String(e?.code ?? '').startsWith('22') ? Object.assign(new Error(`the backup holds a value the table cannot take: ${e.message}`, { cause: err }), { code: 'bad_backup_value' }) : err
}

export function refusalStatus(code: string): number {
  return REFUSALS[code] ?? 400
}

export function toApiError(err: unknown): ApiError {
  const e = (err ?? {}) as RaisedError
  const code = String(e.code ?? '')
  const message = e.message ?? String(err)
  if (e.validation) return { status: 400, code: `bad_parameter:${parameterOf(e)}`, message }
  if (SQLSTATES[code]) return { status: SQLSTATES[code][0], code: SQLSTATES[code][1], message, hint: e.hint }
  if (BUSY[code]) return { status: 503, code: BUSY[code][0], message: BUSY[code][1] }
  if (code === 'BACKUP_BUSY') return { status: 429, code: 'backup_busy', message }
  if (UNAVAILABLE.has(code) || code.startsWith('08')) {
    return { status: 503, code: 'database_unavailable', message: `the database is not available (${code}); try again shortly` }
  }
  // A value in a request the database could not take (a parameter the schema let through).
  if (code.startsWith('22')) return { status: 400, code: 'bad_value', message }
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return { status: 415, code: 'unsupported_media_type', message: `${message}: the API accepts application/json and text/csv (rows only) request bodies` }
  }
  if (FRAMEWORK[code]) return { status: FRAMEWORK[code][0], code: FRAMEWORK[code][1], message }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return { status: e.statusCode, code: 'bad_request', message }
  return { status: 500, code: 'internal_error', message: 'internal error: see the server log' }
}

export function errorBody(e: ApiError): { error: { code: string; message: string; hint?: string } } {
  return { error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } }
}
