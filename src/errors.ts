// The one place where errors become HTTP statuses and `{"error": {"code", "message"}}` bodies.
// docs/errors.md lists the same codes and statuses (test/node/errors-doc.test.ts keeps them so).

/** A backup file that is missing (`backup_not_found`) or unusable (`bad_backup`). */
export class BackupFileError extends Error {
  constructor(
    readonly code: 'backup_not_found' | 'bad_backup' | 'bad_backup_value' | 'disk_full' | 'backup_dir_not_writable',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

export interface ApiError {
  status: number
  code: string
  message: string
  hint?: string
  /** More fields for the error object, e.g. the allowed values or the limit. */
  detail?: Record<string, unknown>
}

/** Codes raised by the procedures (SQLSTATEs), the runner and fastify, by HTTP status and API code. */
export const RAISED: Record<string, [number, string]> = {
  IBTAB: [404, 'unknown_table'],
  P0002: [404, 'not_found'],
  IBKEY: [409, 'idempotency_key_reused'],
  IBORP: [409, 'would_orphan_rows'],
  '23505': [409, 'conflict'],
  '23503': [409, 'conflict'],
  IBARR: [400, 'not_an_array'],
  IBEMP: [400, 'empty_batch'],
  IBBIG: [400, 'batch_too_large'],
  IBJSN: [400, 'malformed_json'],
  '22023': [400, 'bad_request'],
  '42501': [403, 'forbidden'],
  backup_not_found: [404, 'backup_not_found'],
  bad_backup: [422, 'bad_backup'],
  bad_backup_value: [422, 'bad_backup_value'],
  disk_full: [507, 'disk_full'],
  backup_dir_not_writable: [500, 'backup_dir_not_writable'],
  BACKUP_BUSY: [429, 'backup_busy'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'body_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'malformed_json'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed_json'],
}

/** Waits that ran out, and transactions that collided: the request may succeed if retried (503 with Retry-After). */
export const RETRY: Record<string, [string, string]> = {
  '55P03': [
    'lock_timeout',
    'a table this request needs stayed locked (a backup, restore or load holds it) for longer than LOCK_TIMEOUT_MS; try again shortly',
  ],
  '57014': ['statement_timeout', 'the database did not finish this request within STATEMENT_TIMEOUT_MS; try again shortly'],
  '40001': ['serialization_failure', 'another transaction changed the same rows at the same time; try again'],
  '40P01': ['deadlock', 'this request and another waited for each other and this one was cancelled; try again'],
  POOL_TIMEOUT: ['pool_exhausted', 'all database connections stayed busy for longer than POOL_TIMEOUT_MS; try again shortly'],
  DATABASE_DEADLINE: ['database_timeout', 'the database did not answer in time; try again shortly'],
}

/** The database cannot be reached, is starting, or is shutting down: 503 database_unavailable, retry later (and any 08xxx). */
export const UNAVAILABLE = [
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  'PRIMARY_UNREACHABLE',
]

/** What the API answers by itself, before any handler runs or for a whole body the database refused. */
export const ANSWERED: Record<string, number> = {
  unknown_host: 421,
  forbidden_origin: 403,
  other_local_user: 403,
  unauthorized: 401,
  rate_limited: 429,
  not_found: 404,
  method_not_allowed: 405,
  // Answered by api.ingest_request (logged, with batch_id), not raised: always 400.
  not_an_array: 400,
  empty_batch: 400,
  batch_too_large: 400,
  malformed_json: 400,
  malformed_csv: 400,
}

/** The body types the API reads: JSON everywhere, CSV for rows only. */
export const ACCEPTED_TYPES = ['application/json', 'text/csv']

/** An error the API answers with by itself (ANSWERED gives its status). */
export function answered(code: keyof typeof ANSWERED & string, message: string, hint?: string, detail?: Record<string, unknown>): ApiError {
  return { status: ANSWERED[code], code, message, hint, detail }
}

interface Invalid {
  instancePath?: string
  keyword?: string
  params?: {
    missingProperty?: string
    additionalProperty?: string
    allowedValues?: unknown[]
    limit?: number
    type?: string
    passingSchemas?: unknown
  }
  /** With ajv's `verbose` (src/server.ts): the schema of the value, and the value. */
  parentSchema?: {
    type?: string
    minimum?: number
    maximum?: number
    examples?: unknown[]
    enum?: unknown[]
    properties?: Record<string, unknown>
  }
  schema?: unknown
  data?: unknown
}
interface RaisedError {
  code?: string
  message?: string
  hint?: string
  statusCode?: number
  validation?: Invalid[]
  validationContext?: string
  detail?: Record<string, unknown> | string
}

/** The request parameter (query, path, header or body field) a validation error is about. */
function parameterOf(e: RaisedError): string {
  const first = e.validation?.[0]
  return (
    first?.instancePath?.split('/').filter(Boolean)[0] ??
    first?.params?.missingProperty ??
    first?.params?.additionalProperty ??
    e.validationContext ??
    'request'
  )
}

const KINDS: Record<string, string> = {
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  string: 'text',
  array: 'a JSON array',
  object: 'a JSON object',
}
const PLACES: Record<string, string> = { querystring: 'the query', params: 'the path', body: 'the body', headers: 'the headers' }

/** "from 1 to 1000", "at least 1", "at most 9999" (or nothing) for a number's schema. */
function range(schema: Invalid['parentSchema']): string {
  const { minimum: min, maximum: max } = schema ?? {}
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`
  if (min !== undefined) return ` of at least ${min}`
  if (max !== undefined) return ` of at most ${max}`
  return ''
}

/**
 * A validation error's message in the words of the other errors: what the parameter must be
 * (its kind, bounds, allowed values, an example) and what was given, instead of ajv's
 * "querystring/year must be integer".
 */
function invalid(e: RaisedError): ApiError {
  const errors = e.validation ?? []
  const first = errors[0]
  const name = parameterOf(e)
  const code = `bad_parameter:${name}`
  const place = PLACES[e.validationContext ?? ''] ?? 'the request'
  const schema = first?.parentSchema
  const example = schema?.examples?.length ? `, e.g. ${JSON.stringify(schema.examples[0])}` : ''
  const got = first && 'data' in first && first.data !== undefined ? `; got ${JSON.stringify(first.data).slice(0, 40)}` : ''
  const allowed = first?.params?.allowedValues
  switch (first?.keyword) {
    case 'type': {
      const kind = KINDS[first.params?.type?.split(',')[0] ?? ''] ?? first.params?.type
      const bounds = first.params?.type === 'integer' || first.params?.type === 'number' ? range(schema) : ''
      return { status: 400, code, message: `${name} must be ${kind}${bounds}${example}${got}` }
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return {
        status: 400,
        code,
        message: `${name} must be ${KINDS[schema?.type ?? ''] ?? 'a number'}${range(schema) || ` ${first.keyword.includes('inimum') ? 'above' : 'below'} ${first.params?.limit}`}${example}${got}`,
        detail: {
          ...(schema?.minimum !== undefined && { minimum: schema.minimum }),
          ...(schema?.maximum !== undefined && { maximum: schema.maximum }),
        },
      }
    case 'enum':
      if (allowed)
        return {
          status: 400,
          code,
          message: `${name} must be ${allowed.length === 1 ? '' : 'one of '}${allowed.map((v) => JSON.stringify(v)).join(', ')}${got}`,
          detail: { allowed },
        }
      break
    case 'required': {
      // A oneOf of required fields (POST /tables/{table}/restore: file or newest) lists each.
      const missing = [...new Set(errors.filter((x) => x.keyword === 'required').map((x) => x.params?.missingProperty))]
      const either = errors.some((x) => x.keyword === 'oneOf') && missing.length > 1
      return {
        status: 400,
        code,
        message: either
          ? `${place} needs one of ${missing.map((m) => JSON.stringify(m)).join(', ')} (exactly one)`
          : `${place} needs ${JSON.stringify(missing[0])}`,
      }
    }
    case 'oneOf': {
      const names = Array.isArray(first.schema) ? first.schema.flatMap((alt: { required?: string[] }) => alt.required ?? []) : []
      return {
        status: 400,
        code,
        message: names.length
          ? `${place} must have exactly one of ${names.map((m) => JSON.stringify(m)).join(', ')}, not several`
          : `${place} must match exactly one of the forms in /openapi.json`,
      }
    }
    case 'additionalProperties': {
      // A mistyped parameter (?limt=2) is refused, as a mistyped option is on the command line.
      const known = Object.keys(schema?.properties ?? {})
      const what = e.validationContext === 'querystring' ? 'parameter' : 'field'
      return {
        status: 400,
        code,
        message: `${place} has an unknown ${what} ${JSON.stringify(first.params?.additionalProperty)}${known.length ? `: use ${known.join(', ')}` : ` (it takes no ${what})`}`,
        detail: { allowed: known },
      }
    }
  }
  return { status: 400, code, message: e.message ?? 'bad parameter' }
}

/**
 * A value the database refused (22xxx) while a backup file was being read or applied: the
 * file's fault, not the request's.
 */
export function asBackupValueError(err: unknown): unknown {
  const e = err as RaisedError
  return String(e?.code ?? '').startsWith('22')
    ? Object.assign(new Error(`the backup holds a value the table cannot take: ${e.message}`, { cause: err }), { code: 'bad_backup_value' })
    : err
}

/** `bodyLimit`: the largest request body in bytes, named in a 413's message. */
export function toApiError(err: unknown, context: { bodyLimit?: number } = {}): ApiError {
  const e = (err ?? {}) as RaisedError
  const code = String(e.code ?? '')
  const message = e.message ?? String(err)
  if (e.validation) return invalid(e)
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' && context.bodyLimit) {
    return {
      status: 413,
      code: 'body_too_large',
      message: `the request body is larger than the limit of ${context.bodyLimit} bytes`,
      detail: { limit_bytes: context.bodyLimit },
    }
  }
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return {
      status: 415,
      code: 'unsupported_media_type',
      message: `${message}: the API accepts application/json and text/csv (rows only) request bodies`,
      detail: { accepted: ACCEPTED_TYPES },
    }
  }
  if (RAISED[code]) {
    // PostgreSQL's own DETAIL (a 23505's key, say) is a string: spread into the body it became
    // one field per character. Only our objects are extra fields.
    return {
      status: RAISED[code][0],
      code: RAISED[code][1],
      message,
      hint: e.hint,
      detail: typeof e.detail === 'object' ? e.detail : undefined,
    }
  }
  if (RETRY[code]) return { status: 503, code: RETRY[code][0], message: RETRY[code][1] }
  if (UNAVAILABLE.includes(code) || code.startsWith('08')) {
    return { status: 503, code: 'database_unavailable', message: `the database is not available (${code}); try again shortly` }
  }
  // A value in a request the database could not take (a parameter the schema let through).
  if (code.startsWith('22')) return { status: 400, code: 'bad_value', message }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return { status: e.statusCode, code: 'bad_request', message }
  return { status: 500, code: 'internal_error', message: 'internal error: see the server log' }
}

export function errorBody(e: ApiError): { error: { code: string; message: string; hint?: string } } {
  return { error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}), ...e.detail } }
}
