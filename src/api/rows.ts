// Routes over a table's rows: ingest a batch (JSON or CSV, validated by the database), one row
// by id, and rows in id order.
import { parse as csvParse } from 'csv-parse'
import type { FastifyPluginAsync } from 'fastify'
import { CSV_OPTIONS } from '../csv.ts'
import { decodeBody } from '../encoding.ts'
import type { ApiContext } from './context.ts'
import { jsonErrorPlace } from './json-error.ts'
import { anyObject, batchResult, limitParam, tableParam } from './schemas.ts'

/**
 * A text/csv body's records as a JSON array of arrays, parsed 16 KB at a time with a turn of
 * the event loop between slices: a 2 MB body of tiny records never holds it for long.
 */
async function csvBodyAsJson(body: string): Promise<string> {
  const bytes = Buffer.from(body)
  const parser = csvParse({ ...CSV_OPTIONS, skip_empty_lines: true })
  const pieces: string[] = []
  let records: string[][] = []
  const keep = () => {
    if (records.length) pieces.push(JSON.stringify(records).slice(1, -1))
    records = []
  }
  parser.on('data', (record: string[]) => {
    records.push(record)
  })
  const ended = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve)
    parser.on('error', reject)
  })
  ended.catch(() => {}) // awaited below
  let failed: unknown
  parser.on('error', (err) => {
    failed = err
  })
  for (let at = 0; at < bytes.length && !failed; at += 16 * 1024) {
    parser.write(bytes.subarray(at, at + 16 * 1024))
    keep()
    await new Promise((resolve) => setImmediate(resolve))
  }
  if (failed) throw failed
  parser.end()
  await ended
  keep()
  return `[${pieces.join(',')}]`
}

/** A malformed_json refusal, naming where the body stops being JSON. */
function withPosition(response: string, body: string): string {
  const place = jsonErrorPlace(body)
  if (!place) return response
  const refusal = JSON.parse(response) as { error: { message: string } }
  const message = `${refusal.error.message} (the JSON breaks at position ${place.position}: line ${place.line}, column ${place.column})`
  return JSON.stringify({ ...refusal, error: { ...refusal.error, message, ...place } })
}

export const rowsRoutes: FastifyPluginAsync<ApiContext> = async (
  app,
  { sql, bounds, requireToken, security, readSecurity, readErrors, writeErrors },
) => {
  // Ingest: raw bodies go to the database untouched (JSON) or as parsed CSV records.
  await app.register(async (ingest) => {
    // As bytes: invalid UTF-8 and NUL are marked for the database (bad_encoding), not replaced.
    ingest.removeContentTypeParser('application/json')
    ingest.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) =>
      done(null, decodeBody(body as Buffer, 'json')),
    )
    ingest.addContentTypeParser('text/csv', { parseAs: 'buffer' }, (_req, body, done) => done(null, decodeBody(body as Buffer, 'csv')))

    ingest.post<{ Params: { table: string }; Querystring: { dry_run?: boolean }; Body: string | undefined }>(
      '/tables/:table/rows',
      {
        preHandler: requireToken,
        schema: {
          summary: `Ingest a batch of 1..${bounds.maxBatchRows} rows`,
          operationId: 'ingestRows',
          tags: ['ingest'],
          security,
          params: { type: 'object', properties: { table: tableParam }, required: ['table'] },
          querystring: { type: 'object', properties: { dry_run: { type: 'boolean', default: false } } },
          headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', maxLength: 255 } } },
          response: { 200: batchResult, ...writeErrors(404, 409) },
        },
      },
      async (request, reply) => {
        const isCsv = (request.headers['content-type'] ?? '').toLowerCase().startsWith('text/csv')
        let body = request.body ?? null
        let parseError: string | null = null
        if (isCsv) {
          try {
            body = await csvBodyAsJson(body ?? '')
          } catch (err) {
            parseError = `the body is not valid CSV: ${(err as Error).message}`
            body = null
          }
        }
        const key = request.headers['idempotency-key']
        // The answer goes out as the database wrote it: rejected rows exactly as received
        // (a number like 12345678901234567890 would not survive a JS double).
        const [{ response, summary }] = await sql`
        select r::text as response, r - 'rejects' as summary
          from api.ingest_request(${request.params.table}, ${body}, ${isCsv ? 'csv' : 'json'},
                                  ${request.query.dry_run ?? false}, ${typeof key === 'string' ? key : null}, ${parseError}) r`
        request.batchLog = summary
        // A refused body (not_an_array, empty_batch, batch_too_large, malformed_json, malformed_csv) is a 400.
        return reply
          .code(summary.error ? 400 : 200)
          .type('application/json; charset=utf-8')
          .send(summary.error?.code === 'malformed_json' && !isCsv ? withPosition(response, request.body ?? '') : response)
      },
    )
  })

  app.get<{ Params: { table: string; id: number } }>(
    '/tables/:table/rows/:id',
    {
      schema: {
        summary: 'One row by id',
        operationId: 'getRow',
        tags: ['rows'],
        security: readSecurity,
        params: {
          type: 'object',
          properties: { table: tableParam, id: { type: 'integer', minimum: 1, maximum: bounds.maxId } },
          required: ['table', 'id'],
        },
        response: { 200: anyObject, ...readErrors(400, 404) },
      },
    },
    async (request) => (await sql`select api.get_row(${request.params.table}, ${request.params.id}) as row`)[0].row,
  )

  app.get<{ Params: { table: string }; Querystring: { after_id: number; limit: number } }>(
    '/tables/:table/rows',
    {
      schema: {
        summary: 'Rows in id order, keyset-paged: pass next_after_id as after_id',
        operationId: 'listRows',
        tags: ['rows'],
        security: readSecurity,
        params: { type: 'object', properties: { table: tableParam }, required: ['table'] },
        querystring: {
          type: 'object',
          properties: {
            after_id: { type: 'integer', minimum: 0, maximum: bounds.maxId, default: 0 },
            limit: limitParam(bounds.pages.rows),
          },
        },
        response: {
          200: { type: 'object', properties: { rows: { type: 'array', items: anyObject }, next_after_id: { type: ['integer', 'null'] } } },
          ...readErrors(400, 404),
        },
      },
    },
    async (request) => {
      const { table } = request.params
      return (await sql`select api.list_rows(${table}, ${request.query.after_id}, ${request.query.limit}) as page`)[0].page
    },
  )
}
