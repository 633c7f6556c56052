// Report routes: the report data as JSON arrays, or CSV with Accept: text/csv or ?format=csv.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { toCsv } from '../report/csv.ts'
import { ABOVE_MEAN_COLUMNS, departmentsAboveMean, hiresByQuarter, QUARTER_COLUMNS, type MeanOver } from '../report/data.ts'
import type { ApiContext } from './context.ts'

const reportQuery = {
  year: { type: 'integer', minimum: 1, maximum: 9999, default: 2021, examples: [2021] },
  format: { type: 'string', enum: ['json', 'csv'] },
}
const wantsCsv = (request: FastifyRequest<{ Querystring: { format?: string } }>) =>
  request.query.format ? request.query.format === 'csv' : (request.headers.accept ?? '').includes('text/csv')
const sendReport = (
  request: FastifyRequest<{ Querystring: { format?: string } }>,
  reply: FastifyReply,
  rows: object[],
  columns: string[],
) => (wantsCsv(request) ? reply.type('text/csv; charset=utf-8').send(toCsv(rows, columns)) : reply.send(rows))
const rowsOf = (properties: Record<string, object>) => ({ type: 'array', items: { type: 'object', properties } })

export const reportRoutes: FastifyPluginAsync<ApiContext> = async (app, { sql, readSecurity, readErrors }) => {
  app.get<{ Querystring: { year: number; format?: string } }>(
    '/reports/hires-by-quarter',
    {
      schema: {
        summary: 'Hires per department and job in each quarter (UTC) of a year',
        operationId: 'hiresByQuarter',
        tags: ['reports'],
        security: readSecurity,
        querystring: { type: 'object', properties: reportQuery, additionalProperties: false },
        response: {
          200: rowsOf({
            department: { type: 'string' },
            job: { type: 'string' },
            q1: { type: 'integer' },
            q2: { type: 'integer' },
            q3: { type: 'integer' },
            q4: { type: 'integer' },
          }),
          ...readErrors(400),
        },
      },
    },
    async (request, reply) => sendReport(request, reply, (await hiresByQuarter(sql, request.query.year)).rows, QUARTER_COLUMNS),
  )

  app.get<{ Querystring: { year: number; mean_over: MeanOver; format?: string } }>(
    '/reports/departments-above-mean',
    {
      schema: {
        summary: 'Departments hiring above the mean; the X-Mean and X-Mean-Over headers say which mean',
        operationId: 'departmentsAboveMean',
        tags: ['reports'],
        security: readSecurity,
        querystring: {
          type: 'object',
          properties: { ...reportQuery, mean_over: { type: 'string', enum: ['all', 'hiring'], default: 'all' } },
          additionalProperties: false,
        },
        response: {
          200: rowsOf({ id: { type: 'integer' }, department: { type: 'string' }, hired: { type: 'integer' } }),
          ...readErrors(400),
        },
      },
    },
    async (request, reply) => {
      const metric = await departmentsAboveMean(sql, request.query.year, request.query.mean_over)
      reply.header('x-mean-over', request.query.mean_over).header('x-mean', metric.mean === null ? '' : String(metric.mean))
      return sendReport(request, reply, metric.rows, ABOVE_MEAN_COLUMNS)
    },
  )
}
