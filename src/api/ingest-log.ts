// Routes over the ingest log: batches newest first, one batch's rejects, and their replay.
import type { FastifyPluginAsync } from 'fastify'
import type { ApiContext } from './context.ts'
import { anyObject, limitParam, tableParam } from './schemas.ts'

export const ingestLogRoutes: FastifyPluginAsync<ApiContext> = async (
  app,
  { sql, bounds, requireToken, security, readSecurity, readErrors, writeErrors },
) => {
  app.get<{ Querystring: { table?: string; limit: number } }>(
    '/ingest/batches',
    {
      schema: {
        summary: 'The ingest log, newest first',
        operationId: 'listBatches',
        tags: ['ingest log'],
        security: readSecurity,
        querystring: { type: 'object', properties: { table: tableParam, limit: limitParam(bounds.pages.batches) } },
        response: { 200: { type: 'array', items: anyObject }, ...readErrors(400, 404) },
      },
    },
    async (request) => (await sql`select api.list_batches(${request.query.table ?? null}, ${request.query.limit}) as batches`)[0].batches,
  )

  app.get<{ Params: { batch_id: number }; Querystring: { after_position: number; limit: number } }>(
    '/ingest/batches/:batch_id/rejects',
    {
      schema: {
        summary: 'The rejected rows of one batch, with their reasons',
        operationId: 'listBatchRejects',
        tags: ['ingest log'],
        security: readSecurity,
        params: {
          type: 'object',
          properties: { batch_id: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
          required: ['batch_id'],
        },
        querystring: {
          type: 'object',
          properties: {
            after_position: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 },
            limit: limitParam(bounds.pages.rejects),
          },
        },
        response: { 200: anyObject, ...readErrors(400, 404) },
      },
    },
    async (request, reply) => {
      const { batch_id: batchId } = request.params
      const [{ r }] = await sql`select api.batch_rejects(${batchId}, ${request.query.after_position}, ${request.query.limit})::text as r`
      return reply.type('application/json; charset=utf-8').send(r) // as stored: see POST rows
    },
  )

  app.post<{ Querystring: { table: string } }>(
    '/ingest/rejects/replay',
    {
      preHandler: requireToken,
      schema: {
        summary: 'Re-validate the stored rejects of a table; rows that now pass are inserted',
        operationId: 'replayRejects',
        tags: ['ingest'],
        security,
        querystring: { type: 'object', properties: { table: tableParam }, required: ['table'] },
        response: { 200: anyObject, ...writeErrors(404) },
      },
    },
    async (request) => {
      const [result] = await sql`call api.replay_rejects(${request.query.table}, 'api')`
      request.batchLog = { ...result }
      return { table: request.query.table, ...result }
    },
  )
}
