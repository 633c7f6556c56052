// What every route shares once past the guards: a bounded share of the pool and an answer
// deadline, one log line per request, errors as `{"error": {...}}` bodies (src/errors.ts),
// 405 with Allow for a known path asked with another method.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { answered, errorBody, toApiError } from '../errors.ts'
import { DOCS_PREFIX, redactUrl } from './guard.ts'
import { jsonErrorPlace } from './json-error.ts'
import { BODY_LIMIT, type Gate, type Limits } from './limits.ts'

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
      return reply.code(429).send(errorBody(answered('rate_limited', `too many requests from this client: ${(err as Error).message}`)))
    }
    const e = toApiError(err, { bodyLimit: BODY_LIMIT })
    if (e.status >= 500) request.log.error({ code: (err as { code?: string }).code, err: (err as Error).message }, 'request failed')
    if (e.status === 503 || e.status === 429) reply.header('retry-after', String(Math.max(1, Math.ceil(limits.lockTimeoutMs / 1000))))
    reply.code(e.status).send(errorBody(e))
  })

  // Every route that uses the pool waits for a share of it (POOL_TIMEOUT_MS), and answers
  // within statement_timeout plus a second even when the database is frozen (its query is
  // then left to finish or fail, still holding its share). config.unbounded: backups and
  // restores, which take as long as the table is big.
  const methods = new Map<string, { path: RegExp; methods: Set<string> }>()
  app.addHook('onRoute', (route) => {
    if (!route.url.includes('*')) {
      const known = methods.get(route.url) ?? { path: pathPattern(route.url), methods: new Set<string>() }
      for (const method of [route.method].flat()) {
        known.methods.add(method)
        if (method === 'GET') known.methods.add('HEAD') // fastify answers HEAD for every GET
      }
      methods.set(route.url, known)
    }
    const config = route.config ?? {}
    // The Swagger UI's pages and files are static: they take no share of the pool.
    if (config.pool === false || route.url === DOCS_PREFIX || route.url.startsWith(`${DOCS_PREFIX}/`)) return
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
    const path = request.url.split('?')[0]
    const allow = [...new Set([...methods.values()].filter((r) => r.path.test(path)).flatMap((r) => [...r.methods]))].sort().join(', ')
    if (allow) {
      reply.header('allow', allow)
      return reply.code(405).send(errorBody(answered('method_not_allowed', `${request.method} is not allowed on ${redactUrl(path)}: use ${allow}`, undefined, { allowed: allow.split(', ') })))
    }
    reply.code(404).send(errorBody(answered('not_found', `no route ${request.method} ${redactUrl(request.url)}`)))
  })

  // JSON bodies (but the rows', parsed by the database) as fastify parses them, with the place of an error.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    parseJson(request, body as string, (err, value) => {
      const place = err && typeof body === 'string' ? jsonErrorPlace(body) : null
      if (err && place) Object.assign(err, { message: `${err.message} (it breaks at position ${place.position}: line ${place.line}, column ${place.column})`, detail: place })
      done(err, value)
    })
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

/** A route's path ('/tables/:table/rows') as a pattern for request paths. */
function pathPattern(url: string): RegExp {
  return new RegExp(`^${url.split('/').map((part) => part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('/')}$`)
}
