// JSON schemas shared by the API's routes; they validate requests and make up /openapi.json.
// The bounds (rows per batch, page sizes, the largest id) come from the database: see Bounds.

/** A paged route's page size when not asked for, and its most. */
export interface PageSize {
  default: number
  max: number
}

/** Bounds the database sets (api.data_dictionary()), read once at start. */
export interface Bounds {
  /** The most rows a batch may hold (internal.max_batch_rows()). */
  maxBatchRows: number
  /** The largest id a row may have (the rules' id range). */
  maxId: number
  /** The page sizes of the paged routes (internal.page_sizes()). */
  pages: Record<'rows' | 'batches' | 'rejects', PageSize>
}

/** A paged route's `limit` parameter, bounded as the database bounds it. */
export const limitParam = (page: PageSize) => ({ type: 'integer', minimum: 1, maximum: page.max, default: page.default })

export const tableParam = { type: 'string', pattern: '^[a-z_]{1,63}$', description: 'departments, jobs or employees' }
export const tableOnly = { type: 'object', properties: { table: tableParam }, required: ['table'] }
export const anyObject = { type: 'object', additionalProperties: true }

const errorSchema = {
  type: 'object',
  properties: {
    batch_id: { type: 'integer', description: 'the refused request in the ingest log' },
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' } },
      additionalProperties: true,
    },
  },
}
const WHEN: Record<number, string> = {
  400: 'A parameter or body the route does not accept (error.code says which)',
  401: 'No valid bearer token',
  403: 'A write from a page of an origin not in ALLOWED_ORIGINS, a call of another OS user of the machine without a token (other_local_user), or a database refusal (forbidden)',
  404: 'No such table, row, batch or backup',
  409: 'A conflict (error.code says which)',
  413: 'A body over the size limit (error.limit_bytes)',
  415: 'A body of another type than the route reads (error.accepted)',
  422: 'A backup file that cannot be restored',
  429: 'A backup of the table, or too many backups, already running',
  500: 'The backup folder cannot be written',
  503: 'The database is busy or not answering: retry after Retry-After',
  507: 'The disk is full',
}

/** The error responses a route can give, by status (every route may also answer 421 and 429: see the API's description). */
export const errorsOf = (statuses: number[]) =>
  Object.fromEntries([...new Set(statuses)].sort().map((s) => [s, { ...errorSchema, description: WHEN[s] }]))

const rejectSchema = {
  type: 'object',
  properties: { position: { type: 'integer' }, row: {}, reasons: { type: 'array', items: { type: 'string' } } },
  additionalProperties: true,
}
export const batchResult = {
  type: 'object',
  properties: {
    batch_id: { type: ['integer', 'null'] },
    table: { type: 'string' },
    received: { type: 'integer' },
    inserted: { type: 'integer' },
    unchanged: { type: 'integer' },
    rejected: { type: 'integer' },
    rejects: { type: 'array', items: rejectSchema },
    dry_run: { type: 'boolean' },
    replayed: { type: 'boolean' },
  },
}

export const rowBodyDoc = (bounds: Bounds) => ({
  description:
    `A JSON array of 1..${bounds.maxBatchRows} row objects, or text/csv: header-less lines in the historical files' format. ` +
    'Validated by the database (see GET /data-dictionary), so any body is accepted here and every refusal is logged.',
  content: {
    'application/json': { schema: { type: 'array', minItems: 1, maxItems: bounds.maxBatchRows, items: anyObject } },
    'text/csv': { schema: { type: 'string' } },
  },
})
