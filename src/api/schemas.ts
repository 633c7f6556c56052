// JSON schemas shared by the API's routes; they validate requests and make up /openapi.json.

export const tableParam = { type: 'string', pattern: '^[a-z_]{1,63}$', description: 'departments, jobs or employees' }
export const tableOnly = { type: 'object', properties: { table: tableParam }, required: ['table'] }
export const anyObject = { type: 'object', additionalProperties: true }

const errorSchema = {
  type: 'object',
  properties: { batch_id: { type: 'integer', description: 'the refused request in the ingest log' }, error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' } } } },
}
export const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema, 413: errorSchema, 422: errorSchema, 503: errorSchema }

const rejectSchema = {
  type: 'object',
  properties: { position: { type: 'integer' }, row: {}, reasons: { type: 'array', items: { type: 'string' } } },
  additionalProperties: true,
}
export const batchResult = {
  type: 'object',
  properties: {
    batch_id: { type: ['integer', 'null'] }, table: { type: 'string' }, received: { type: 'integer' }, inserted: { type: 'integer' },
    unchanged: { type: 'integer' }, rejected: { type: 'integer' }, rejects: { type: 'array', items: rejectSchema },
    dry_run: { type: 'boolean' }, replayed: { type: 'boolean' },
  },
}

export const rowBodyDoc = {
  description: 'A JSON array of 1..1000 row objects, or text/csv: header-less lines in the historical files\' format. ' +
    'Validated by the database (see GET /data-dictionary), so any body is accepted here and every refusal is logged.',
  content: {
    'application/json': { schema: { type: 'array', minItems: 1, maxItems: 1000, items: anyObject } },
    'text/csv': { schema: { type: 'string' } },
  },
}
