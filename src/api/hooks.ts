// What every route shares once past the guards: a bounded share of the pool and an answer
// deadline, one log line per request, errors as `{"error": {...}}` bodies (src/errors.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody, toApiError } from '../errors.ts'
import { redactUrl } from './guard.ts'
import type { Gate, Limits } from './limits.ts'

export function installHooks(app: FastifyInstance, limits: Limits, requests: Gate): void {
  // Shutting down: answer in-flight requests with Connection: close, so keep-alive
  // clients do not hold the server open after their last response.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
    if (closing) reply.header('connection', 'close')
  })
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({
      method: request.method, route: request.routeOptions.url ?? redactUrl(request.url), status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10, ...request.batchLog,
    }, 'request')
  })
  app.setErrorHandler((err, request, reply) => {
    if ((err as { statusCode?: number }).statusCode === 429) {
      return reply.code(429).send(errorBody({ status: 429, code: 'rate_limited', message: `too many requests from this client: ${(err as Error).message}` }))
    }
    const e = toApiError(err)
    if (e.status >= 500) request.log.error({ code: (err as { code?: string }).code, err: (err as Error).message }, 'request failed')
    if (e.status === 503 || e.status === 429) reply.header('retry-after', String(Math.max(1, Math.ceil(limits.lockTimeoutMs / 1000))))
    reply.code(e.status).send(errorBody(e))
  })

  // Every route that uses the pool waits for a share of it (POOL_TIMEOUT_MS), and answers
  // within statement_timeout plus a second even when the database is frozen (its query is
  // then left to finish or fail, still holding its share). config.unbounded: backups and
  // restores, which take as long as the table is big.
  app.addHook('onRoute', (route) => {
    const config = route.config ?? {}
    if (config.pool === false) return
    const handler = route.handler as (this: unknown, request: FastifyRequest, reply: FastifyReply) => unknown
    route.handler = async function (request, reply) {
      await requests.enter(limits.poolTimeoutMs)
      const work = Promise.resolve().then(() => handler.call(this, request, reply))
      work.then(() => requests.leave(), () => requests.leave())
      if (config.unbounded) return work
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error(`the database did not answer within ${limits.statementTimeoutMs + 1000} ms`), { code: 'DATABASE_DEADLINE' })),
          limits.statementTimeoutMs + 1000)
      })
      try {
        return await Promise.race([work, deadline])
      } finally {
        clearTimeout(timer)
      }
    }
  })
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody({ status: 404, code: 'not_found', message: `no route ${request.method} ${redactUrl(request.url)}` }))
  })

  // ajv coerces '1e200000' to Infinity and lets it through an integer schema with a maximum.
  app.addHook('preHandler', async (request) => {
    for (const [context, values] of [['querystring', request.query], ['params', request.params]] as const) {
      for (const [name, value] of Object.entries((values ?? {}) as Record<string, unknown>)) {
        if (typeof value === 'number' && !Number.isFinite(value)) {
          throw Object.assign(new Error(`${context}/${name} must be a finite integer`), { statusCode: 400, validation: [{ instancePath: `/${name}` }] })
        }
      }
    }
  })
}
