// What every route shares once past the guards: where it runs (the read routes on a replica,
// src/replicas.ts), a bounded share of that pool and an answer deadline, one log line per request,
// errors as `{"error": {...}}` bodies (src/errors.ts), 405 with Allow for a known path asked with
// another method.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { answered, errorBody, toApiError } from '../errors.ts'
import { parseLsn, replicaFailed, type ReplicaSet, type Target } from '../replicas.ts'
import { REPLICA_HEADERS } from './context.ts'
import { DOCS_PREFIX, redactUrl } from './guard.ts'
import { jsonErrorPlace } from './json-error.ts'
import { BODY_LIMIT, type Limits } from './limits.ts'

/** GET routes that stay on the primary: the backup files live beside it, and the schedule is its operator's view. */
const PRIMARY_READS = new Set(['/schedule', '/tables/:table/backups'])

const MIN_LSN = {
  type: 'string',
  description:
    "a write's X-Hirebase-LSN: only a server that has replayed this far answers (a replica, else the primary); the X-Hirebase-LSN request header does the same",
}

/** The WAL position a read must see: the later of ?min_lsn= and the X-Hirebase-LSN header; a malformed one is a 400. */
function minLsnOf(request: FastifyRequest): bigint | undefined {
  let min: bigint | undefined
  const given = [
    ['min_lsn', (request.query as { min_lsn?: unknown } | undefined)?.min_lsn],
    [REPLICA_HEADERS.lsn, request.headers[REPLICA_HEADERS.lsn]],
  ] as const
  for (const [name, value] of given) {
    if (value === undefined) continue
    const lsn = typeof value === 'string' ? parseLsn(value.trim()) : null
    if (lsn === null) {
      throw Object.assign(
        new Error(
          `${name} must be a WAL position as a write's X-Hirebase-LSN header gives it (two hexadecimal numbers, e.g. 0/16B3748), got ${JSON.stringify(value).slice(0, 40)}`,
        ),
        { statusCode: 400, validation: [{ instancePath: `/${name}` }] },
      )
    }
    if (min === undefined || lsn > min) min = lsn
  }
  return min
}

export function installHooks(app: FastifyInstance, limits: Limits, replicas: ReplicaSet): void {
  // Shutting down: answer in-flight requests with Connection: close, so keep-alive
  // clients do not hold the server open after their last response.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
    if (closing) reply.header('connection', 'close')
    // Read after the commit returned: a read that sends it back sees this write (src/replicas.ts says which position and why).
    if (request.wrote && reply.statusCode < 500) {
      const lsn = await replicas.commitLsn()
      if (lsn) reply.header(REPLICA_HEADERS.lsn, lsn)
    }
  })
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? redactUrl(request.url),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ...request.batchLog,
      },
      'request',
    )
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
  // restores, which take as long as the table is big. The read routes run on a replica when one
  // is usable (and has replayed min_lsn), and again on the primary if that replica fails them.
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
    // Every query parameter a route takes is in its schema: any other is a 400, never ignored.
    const given = route.schema ?? {}
    // (properties: {} even when none: a schema without it is read as a map of properties, and the
    // OpenAPI document then listed "type" and "additionalProperties" as query parameters.)
    route.schema = {
      ...given,
      querystring: { type: 'object', properties: {}, ...(given.querystring as object | undefined), additionalProperties: false },
    }
    const handler = route.handler as (this: unknown, request: FastifyRequest, reply: FastifyReply) => unknown
    const verbs = [route.method].flat()
    const reads = verbs.every((m) => m === 'GET' || m === 'HEAD') && !PRIMARY_READS.has(route.url)
    const writes = verbs.some((m) => m !== 'GET' && m !== 'HEAD')
    // (a malformed min_lsn is a 400, which every read's error responses list: readErrors)
    if (reads) {
      const schema = route.schema
      const query = schema.querystring as { properties: Record<string, unknown> }
      const headers = (schema.headers ?? { type: 'object' }) as { properties?: Record<string, unknown> }
      route.schema = {
        ...schema,
        querystring: { ...query, properties: { ...query.properties, min_lsn: MIN_LSN } },
        headers: { ...headers, properties: { ...headers.properties, [REPLICA_HEADERS.lsn]: MIN_LSN } },
      }
    }
    route.handler = async function (request, reply) {
      const target = reads ? await replicas.pick(minLsnOf(request)) : replicas.primary
      // A primary that stopped answering the probes: 503 now, not after a connect that may hang.
      if (target === replicas.primary && replicas.primaryDown) {
        throw Object.assign(new Error('the primary does not answer'), { code: 'PRIMARY_UNREACHABLE' })
      }
      request.wrote = writes
      const attempt = async (t: Target) => {
        await t.requests.enter(limits.poolTimeoutMs)
        reply.header(REPLICA_HEADERS.servedBy, t.name)
        const running = Promise.resolve().then(() => replicas.store.run(t.sql, () => handler.call(this, request, reply)))
        running.then(
          () => t.requests.leave(),
          () => t.requests.leave(),
        )
        return running
      }
      let work = attempt(target)
      if (target !== replicas.primary) {
        work = work.catch((err) => {
          if (!replicaFailed(err) || reply.raw.headersSent) throw err
          replicas.down(target, err)
          request.log.warn(
            { replica: target.name, code: (err as { code?: string }).code, err: (err as Error).message },
            'a replica failed a read: the primary answers it',
          )
          return attempt(replicas.primary)
        })
      }
      if (config.unbounded) return work
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              Object.assign(new Error(`the database did not answer within ${limits.statementTimeoutMs + 1000} ms`), {
                code: 'DATABASE_DEADLINE',
              }),
            ),
          limits.statementTimeoutMs + 1000,
        )
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
      return reply.code(405).send(
        errorBody(
          answered('method_not_allowed', `${request.method} is not allowed on ${redactUrl(path)}: use ${allow}`, undefined, {
            allowed: allow.split(', '),
          }),
        ),
      )
    }
    reply.code(404).send(errorBody(answered('not_found', `no route ${request.method} ${redactUrl(request.url)}`)))
  })

  // JSON bodies (but the rows', parsed by the database) as fastify parses them, with the place of an error.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    parseJson(request, body as string, (err, value) => {
      const place = err && typeof body === 'string' ? jsonErrorPlace(body) : null
      if (err && place)
        Object.assign(err, {
          message: `${err.message} (it breaks at position ${place.position}: line ${place.line}, column ${place.column})`,
          detail: place,
        })
      done(err, value)
    })
  })

  // ajv coerces what Number() reads: '1e0', '0x1', ' 1', '1.0', and '1e200000' (Infinity, through
  // an integer schema with a maximum). A number in a query or a path is written in digits, as
  // the data dictionary's ids are.
  app.addHook('preHandler', async (request) => {
    const url = request.raw.url ?? ''
    const at = url.indexOf('?')
    const query = new URLSearchParams(at >= 0 ? url.slice(at + 1) : '')
    const pattern = (request.routeOptions.url ?? '').split('/')
    const path = (at >= 0 ? url.slice(0, at) : url).split('/')
    const inPath = (name: string) => {
      const i = pattern.indexOf(`:${name}`)
      try {
        return i >= 0 ? decodeURIComponent(path[i] ?? '') : undefined
      } catch {
        return undefined
      }
    }
    for (const [values, raw] of [
      [request.query, (name: string) => query.get(name) ?? undefined],
      [request.params, inPath],
    ] as const) {
      for (const [name, value] of Object.entries((values ?? {}) as Record<string, unknown>)) {
        const text = typeof value === 'number' ? (raw(name) ?? String(value)) : undefined
        if (text !== undefined && !/^[0-9]+$/.test(text)) {
          throw Object.assign(new Error(`${name} must be a whole number written in digits; got ${JSON.stringify(text.slice(0, 40))}`), {
            statusCode: 400,
            validation: [{ instancePath: `/${name}` }],
          })
        }
      }
    }
  })
}

/** A route's path ('/tables/:table/rows') as a pattern for request paths. */
function pathPattern(url: string): RegExp {
  return new RegExp(
    `^${url
      .split('/')
      .map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/')}$`,
  )
}
