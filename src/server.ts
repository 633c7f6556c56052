// The REST API: every handler parses the request, makes one api.* call, and maps errors.
// The rules live in the database; nothing here re-checks a row.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import { parse as csvParse } from 'csv-parse'
import cors from '@fastify/cors'
import { CSV_OPTIONS } from './csv.ts'
import { connect, type Sql } from './database.ts'
import { decodeBody } from './encoding.ts'
import { errorBody, refusalStatus, toApiError } from './errors.ts'
import { projectVersion } from './paths.ts'
import { backupTable, databaseFolder, listBackups, restoreTables } from './backup.ts'
import { ABOVE_MEAN_COLUMNS, departmentsAboveMean, hiresByQuarter, QUARTER_COLUMNS, toCsv, type MeanOver } from './report.ts'
import { apiConnection, type ApiConnection } from './roles.ts'

const BODY_LIMIT = 2 * 1024 * 1024

/** Every wait the API may meet, bounded (README: "Timeouts"). */
export interface Limits {
  /** Database statement_timeout per request (STATEMENT_TIMEOUT_MS); backups and restores lift it. */
  statementTimeoutMs: number
  /** Database lock_timeout per request (LOCK_TIMEOUT_MS): a table lock waited for longer is a 503. */
  lockTimeoutMs: number
  /** Connections in the pool (POOL_SIZE); two are kept for the backup runner. */
  poolSize: number
  /** How long a request waits for a free connection (POOL_TIMEOUT_MS) before a 503. */
  poolTimeoutMs: number
  /** Idle socket timeout (HTTP_CONNECTION_TIMEOUT_MS). */
  connectionTimeoutMs: number
  /** Time to receive a whole request, body included (HTTP_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs: number
  /** Backups running at once through the API (BACKUP_CONCURRENCY); one per table in any case. */
  backupConcurrency: number
  /** Requests per client (IP address) per window (RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_SECONDS); more get 429 with Retry-After. */
  rateLimitMax: number
  rateLimitWindowSeconds: number
  /** Caps set on the API's connections, read by the database's triggers (sql/procedures/760-internal.bounds.sql):
   *  a rejected row's stored payload, the ingest log per table, the idempotency keys. */
  rejectPayloadMaxBytes: number
  ingestLogMaxBatches: number
  ingestLogMaxRejects: number
  idempotencyMaxKeys: number
}

const LIMIT_ENV: Record<keyof Limits, [string, number]> = {
  statementTimeoutMs: ['STATEMENT_TIMEOUT_MS', 15_000],
  lockTimeoutMs: ['LOCK_TIMEOUT_MS', 5_000],
  poolSize: ['POOL_SIZE', 10],
  poolTimeoutMs: ['POOL_TIMEOUT_MS', 3_000],
  connectionTimeoutMs: ['HTTP_CONNECTION_TIMEOUT_MS', 60_000],
  requestTimeoutMs: ['HTTP_REQUEST_TIMEOUT_MS', 30_000],
  backupConcurrency: ['BACKUP_CONCURRENCY', 2],
  rateLimitMax: ['RATE_LIMIT_MAX', 600],
  rateLimitWindowSeconds: ['RATE_LIMIT_WINDOW_SECONDS', 60],
  rejectPayloadMaxBytes: ['REJECT_PAYLOAD_MAX_BYTES', 1024],
  ingestLogMaxBatches: ['INGEST_LOG_MAX_BATCHES', 100_000],
  ingestLogMaxRejects: ['INGEST_LOG_MAX_REJECTS', 1_000_000],
  idempotencyMaxKeys: ['IDEMPOTENCY_MAX_KEYS', 10_000],
}

export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): Limits {
  const limits = {} as Limits
  for (const [key, [name, fallback]] of Object.entries(LIMIT_ENV) as [keyof Limits, [string, number]][]) {
    const value = Number(env[name] || fallback)
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number >= 1, got "${env[name]}"`)
    limits[key] = value
  }
  if (limits.poolSize < 3) throw new Error(`POOL_SIZE must be at least 3 (two connections are kept for the backup runner), got ${limits.poolSize}`)
  return limits
}

/** A counting semaphore whose waits are bounded: the requests' share of the pool. */
function gate(size: number) {
  let used = 0
  const waiting: (() => void)[] = []
  return {
    size,
    get used() { return used },
    get waiting() { return waiting.length },
    async enter(timeoutMs: number): Promise<void> {
      if (used < size) { used++; return }
      await new Promise<void>((resolve, reject) => {
        const wake = () => { clearTimeout(timer); used++; resolve() }
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(wake), 1)
          reject(Object.assign(new Error(`all ${size} database connections stayed busy for ${timeoutMs} ms`), { code: 'POOL_TIMEOUT' }))
        }, timeoutMs)
        waiting.push(wake)
      })
    },
    leave() {
      used--
      waiting.shift()?.()
    },
  }
}

export interface ServerOptions {
  /** The owner's URL: the runner's fixed statements (backups, restores) run on it, nothing else. */
  databaseUrl: string
  /** How the API's own pool logs in (src/roles.ts); worked out from databaseUrl when absent. */
  api?: ApiConnection
  /** Where backups live (BACKUP_DIR) and how many to keep per table (BACKUP_KEEP). */
  backupDir: string
  backupKeep?: number
  /** When set, POST routes require `Authorization: Bearer <token>`. */
  token?: string
  /** When set, every route but /health and /openapi.json requires this token (or `token`). */
  readToken?: string
  /** The address the server listens on (HOST): requests must name it in Host. */
  host?: string
  /** More names a request's Host may give (ALLOWED_HOSTS), e.g. behind a proxy. */
  allowedHosts?: string[]
  /** Origins (scheme://host[:port]) whose pages may write and get CORS headers (ALLOWED_ORIGINS). */
  allowedOrigins?: string[]
  logLevel?: string
  /** Timeouts, pool size and the caps on what clients can make the server and the database hold; from the environment when not given. */
  limits?: Limits
}

/** A token from the environment: unset is undefined, blank is an error (nobody could use it). */
export function tokenFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name]
  if (value === undefined || value === '') return undefined
  if (value.trim() === '') throw new Error(`${name} is blank: set a real token, or unset it`)
  return value
}

/** A comma-separated list from the environment, trimmed, empties dropped. */
export const listFromEnv = (value: string | undefined) => (value ?? '').split(',').map((x) => x.trim()).filter(Boolean)

/** A URL with its query string replaced, for logs (tokens travel in query strings too). */
export const redactUrl = (url: string) => url.includes('?') ? `${url.slice(0, url.indexOf('?'))}?[redacted]` : url

/** The host name and port of a Host header ([::1]:8000 included); null when it is not one. */
function parseHost(header: string | undefined): { name: string; port: string } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?$/.exec(header ?? '')
  return m ? { name: m[1].toLowerCase().replace(/\.$/, ''), port: m[2] ?? '80' } : null
}

/**
 * Whether a request's Host names this server: the address it listens on, a loopback name
 * when it listens on loopback, any IP literal when it listens on every address (an IP
 * literal cannot be rebound by DNS), with the port it listens on; or a name in ALLOWED_HOSTS
 * (with or without a port). Anything else may be a DNS-rebinding page.
 */
export function hostAllowed(header: string | undefined, listenHost: string, port: number, allowed: string[]): boolean {
  const h = parseHost(header)
  if (!h) return false
  const lower = allowed.map((a) => a.toLowerCase())
  if (lower.includes(h.name) || lower.includes(`${h.name}:${h.port}`)) return true
  if (h.port !== String(port)) return false
  const bare = h.name.replace(/^\[|\]$/g, '')
  const listen = listenHost.toLowerCase().replace(/^\[|\]$/g, '')
  if (bare === listen) return true
  if (isLoopback(listen)) return bare === 'localhost' || bare === '127.0.0.1' || bare === '::1'
  if (listen === '0.0.0.0' || listen === '::') return isIP(bare) !== 0
  return false
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

/** Refuses, before listening, what would expose writes to the network without a token. */
export function checkListenAddress(host: string, token: string | undefined): void {
  if (!isLoopback(host) && !token) {
    throw new Error(`refusing to listen on ${host} without API_TOKEN: set API_TOKEN, or HOST=127.0.0.1 for local use`)
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest()

function authorized(header: string | undefined, token: string): boolean {
  const given = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? ''
  // Equal-length digests: the comparison takes the same time whatever the token.
  return timingSafeEqual(digest(given), digest(token))
}

// ---- schemas (they also make up /openapi.json) ----
const tableParam = { type: 'string', pattern: '^[a-z_]{1,63}$', description: 'departments, jobs or employees' }
const errorSchema = {
  type: 'object',
  properties: { batch_id: { type: 'integer', description: 'the refused request in the ingest log' }, error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, hint: { type: 'string' } } } },
}
const rejectSchema = {
  type: 'object',
  properties: { position: { type: 'integer' }, row: {}, reasons: { type: 'array', items: { type: 'string' } } },
  additionalProperties: true,
}
const batchResult = {
  type: 'object',
  properties: {
    batch_id: { type: ['integer', 'null'] }, table: { type: 'string' }, received: { type: 'integer' }, inserted: { type: 'integer' },
    unchanged: { type: 'integer' }, rejected: { type: 'integer' }, rejects: { type: 'array', items: rejectSchema },
    dry_run: { type: 'boolean' }, replayed: { type: 'boolean' },
  },
}
const anyObject = { type: 'object', additionalProperties: true }
const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 409: errorSchema, 413: errorSchema, 422: errorSchema, 503: errorSchema }
const rowBodyDoc = {
  description: 'A JSON array of 1..1000 row objects, or text/csv: header-less lines in the historical files\' format. ' +
    'Validated by the database (see GET /data-dictionary), so any body is accepted here and every refusal is logged.',
  content: {
    'application/json': { schema: { type: 'array', minItems: 1, maxItems: 1000, items: anyObject } },
    'text/csv': { schema: { type: 'string' } },
  },
}

/**
 * A text/csv body's records as a JSON array of arrays, parsed 16 KB at a time with a turn of
 * the event loop between slices: a 2 MB body of tiny records never holds it for long.
 */
async function csvBodyAsJson(body: string): Promise<string> {
  const bytes = Buffer.from(body)
  const parser = csvParse({ ...CSV_OPTIONS, skip_empty_lines: true })
  const pieces: string[] = []
  let records: string[][] = []
  const keep = () => { if (records.length) pieces.push(JSON.stringify(records).slice(1, -1)); records = [] }
  parser.on('data', (record: string[]) => { records.push(record) })
  const ended = new Promise<void>((resolve, reject) => { parser.on('end', resolve); parser.on('error', reject) })
  ended.catch(() => {}) // awaited below
  let failed: unknown
  parser.on('error', (err) => { failed = err })
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

declare module 'fastify' {
  interface FastifyRequest { batchLog?: Record<string, unknown> }
  // pool: false — the route uses no pool connection; unbounded: no answer deadline.
  interface FastifyContextConfig { pool?: boolean; unbounded?: boolean }
}

export async function buildServer(options: ServerOptions): Promise<{ app: FastifyInstance; sql: Sql; runner: Sql; api: ApiConnection }> {
  const limits = options.limits ?? limitsFromEnv()
  const api = options.api ?? await apiConnection(options.databaseUrl)
  // Every request's statements run on this pool, as the API's login role (or, in the fallback,
  // after SET ROLE).
  const sql = connect(api.url, {
    max: limits.poolSize,
    idle_timeout: 60,
    connect_timeout: 5,
    connection: {
      ...(api.role ? { role: api.role } : {}), application_name: 'hirebase-api',
      statement_timeout: String(limits.statementTimeoutMs), lock_timeout: String(limits.lockTimeoutMs),
      // Read by the database's triggers (sql/procedures/760-internal.bounds.sql).
      'hirebase.reject_payload_max_bytes': String(limits.rejectPayloadMaxBytes),
      'hirebase.ingest_log_max_batches': String(limits.ingestLogMaxBatches),
      'hirebase.ingest_log_max_rejects': String(limits.ingestLogMaxRejects),
      'hirebase.idempotency_max_keys': String(limits.idempotencyMaxKeys),
    } as Record<string, string>,
    // bigint (batch ids, counts) as JSON numbers: they stay far below 2^53.
    types: { int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
  })
  // The runner's pool (the owner): only the fixed statements of backups and restores, which
  // need runner.*; no statement on it is built from a request. Room for the backup runner's
  // claim and backup, and the API's backups.
  const runner = connect(options.databaseUrl, { max: limits.backupConcurrency + 2, idle_timeout: 60, connect_timeout: 5, connection: { application_name: 'hirebase-runner' } })
  const listenHost = options.host ?? '127.0.0.1'
  const allowedOrigins = options.allowedOrigins ?? []
  // Requests share the pool less two connections, which stay for the backup runner (its
  // claim and its backup); a request that cannot get one in time is a 503, not a queue.
  const requests = gate(limits.poolSize - 2)
  // /health has a connection of its own, so a busy pool cannot hide the database's state.
  const healthUrl = options.databaseUrl
  let healthSql: Sql | undefined
  const app = Fastify({
    connectionTimeout: limits.connectionTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Node checks request timeouts on this interval (30 s by default), and only when the
    // headers' own timeout is no longer than the request's.
    http: {
      connectionsCheckingInterval: Math.min(1000, limits.requestTimeoutMs),
      requestTimeout: limits.requestTimeoutMs, headersTimeout: Math.min(limits.requestTimeoutMs, 60_000),
    } as never,
    logger: {
      level: options.logLevel ?? 'info', stream: process.stderr,
      serializers: { req: (req: { method: string; url: string }) => ({ method: req.method, url: redactUrl(req.url) }) },
    },
    // One line per request, written by our onResponse hook (with the batch's counts).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    return503OnClosing: true,
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'hirebase API', version: projectVersion, description: 'Batch ingest and look-ups over the hirebase procedures.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    // Ingest bodies are documented here, not validated by fastify: the database validates them.
    transformObject: (doc) => {
      if (!('openapiObject' in doc)) return doc.swaggerObject
      const post = doc.openapiObject.paths?.['/tables/{table}/rows']?.post
      if (post) post.requestBody = rowBodyDoc as never
      return doc.openapiObject
    },
  })

  // Requests per client: a flood gets 429 with Retry-After before it reaches the database.
  await app.register(rateLimit, { max: limits.rateLimitMax, timeWindow: limits.rateLimitWindowSeconds * 1000 })

  // Shutting down: answer in-flight requests with Connection: close, so keep-alive
  // clients do not hold the server open after their last response.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onClose', async () => { await runner.end({ timeout: 5 }) })

  // A web page on another site must not reach the API: DNS rebinding (a Host that is not this
  // server) and cross-origin writes are refused before anything else runs.
  app.addHook('onRequest', async (request, reply) => {
    const port = (app.server.address() as { port?: number } | null)?.port ?? 0
    if (!hostAllowed(request.headers.host, listenHost, port, options.allowedHosts ?? [])) {
      return reply.code(421).send(errorBody({ status: 421, code: 'unknown_host', message: `this server does not answer for Host "${request.headers.host ?? ''}"`, hint: 'use the address it listens on, or add the name to ALLOWED_HOSTS' }))
    }
    const origin = request.headers.origin
    if (origin !== undefined && !['GET', 'HEAD', 'OPTIONS'].includes(request.method) && !allowedOrigins.includes(origin)) {
      return reply.code(403).send(errorBody({ status: 403, code: 'forbidden_origin', message: `writes from pages of ${origin} are refused`, hint: 'list the origin in ALLOWED_ORIGINS' }))
    }
    if (options.readToken && !['/health', '/openapi.json'].includes(request.url.split('?')[0]) && request.method !== 'OPTIONS' &&
        !authorized(request.headers.authorization, options.readToken) && !(options.token && authorized(request.headers.authorization, options.token))) {
      reply.header('www-authenticate', 'Bearer')
      return reply.code(401).send(errorBody({ status: 401, code: 'unauthorized', message: 'this server needs Authorization: Bearer <READ_TOKEN or API_TOKEN> for every route but /health' }))
    }
  })
  // CORS headers only for the listed origins (none by default).
  await app.register(cors, { origin: (origin, cb) => cb(null, origin !== undefined && allowedOrigins.includes(origin)), methods: ['GET', 'HEAD', 'POST'] })
  // Bodies are JSON (or CSV, for ingest only): no text/plain, which a page may send anywhere.
  app.removeContentTypeParser('text/plain')
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

  const requireToken = async (request: FastifyRequest, reply: FastifyReply) => {
    if (options.token && !authorized(request.headers.authorization, options.token)) {
      reply.header('www-authenticate', 'Bearer')
      return reply.code(401).send(errorBody({ status: 401, code: 'unauthorized', message: 'this route needs Authorization: Bearer <API_TOKEN>' }))
    }
  }
  const security = options.token ? [{ bearer: [] }] : []

  // Ingest: raw bodies go to the database untouched (JSON) or as parsed CSV records.
  await app.register(async (ingest) => {
    // As bytes: invalid UTF-8 and NUL are marked for the database (bad_encoding), not replaced.
    ingest.removeContentTypeParser('application/json')
    ingest.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, decodeBody(body as Buffer, 'json')))
    ingest.addContentTypeParser('text/csv', { parseAs: 'buffer' }, (_req, body, done) => done(null, decodeBody(body as Buffer, 'csv')))

    ingest.post<{ Params: { table: string }; Querystring: { dry_run?: boolean }; Body: string | undefined }>('/tables/:table/rows', {
      preHandler: requireToken,
      schema: {
        summary: 'Ingest a batch of 1..1000 rows',
        tags: ['ingest'],
        security,
        params: { type: 'object', properties: { table: tableParam }, required: ['table'] },
        querystring: { type: 'object', properties: { dry_run: { type: 'boolean', default: false } } },
        headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', maxLength: 255 } } },
        response: { 200: batchResult, ...errors },
      },
    }, async (request, reply) => {
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
      return reply.code(summary.error ? refusalStatus(summary.error.code) : 200).type('application/json; charset=utf-8').send(response)
    })
  })

  app.get<{ Params: { table: string; id: number } }>('/tables/:table/rows/:id', {
    schema: {
      summary: 'One row by id', tags: ['rows'],
      params: { type: 'object', properties: { table: tableParam, id: { type: 'integer', minimum: 1, maximum: 2147483647 } }, required: ['table', 'id'] },
      response: { 200: anyObject, ...errors },
    },
  }, async (request) => (await sql`select api.get_row(${request.params.table}, ${request.params.id}) as row`)[0].row)

  app.get<{ Params: { table: string }; Querystring: { after_id: number; limit: number } }>('/tables/:table/rows', {
    schema: {
      summary: 'Rows in id order, keyset-paged: pass next_after_id as after_id', tags: ['rows'],
      params: { type: 'object', properties: { table: tableParam }, required: ['table'] },
      querystring: {
        type: 'object',
        properties: { after_id: { type: 'integer', minimum: 0, maximum: 2147483647, default: 0 }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
      },
      response: { 200: { type: 'object', properties: { rows: { type: 'array', items: anyObject }, next_after_id: { type: ['integer', 'null'] } } }, ...errors },
    },
  }, async (request) => {
    const { table } = request.params
    return (await sql`select api.list_rows(${table}, ${request.query.after_id}, ${request.query.limit}) as page`)[0].page
  })

  app.get<{ Querystring: { table?: string; limit: number } }>('/ingest/batches', {
    schema: {
      summary: 'The ingest log, newest first', tags: ['ingest log'],
      querystring: { type: 'object', properties: { table: tableParam, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } } },
      response: { 200: { type: 'array', items: anyObject }, ...errors },
    },
  }, async (request) => (await sql`select api.list_batches(${request.query.table ?? null}, ${request.query.limit}) as batches`)[0].batches)

  app.get<{ Params: { batch_id: number }; Querystring: { after_position: number; limit: number } }>('/ingest/batches/:batch_id/rejects', {
    schema: {
      summary: 'The rejected rows of one batch, with their reasons', tags: ['ingest log'],
      params: { type: 'object', properties: { batch_id: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } }, required: ['batch_id'] },
      querystring: {
        type: 'object',
        properties: { after_position: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 }, limit: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 } },
      },
      response: { 200: anyObject, ...errors },
    },
  }, async (request, reply) => {
    const { batch_id: batchId } = request.params
    const [{ r }] = await sql`select api.batch_rejects(${batchId}, ${request.query.after_position}, ${request.query.limit})::text as r`
    return reply.type('application/json; charset=utf-8').send(r) // as stored: see POST rows
  })

  app.post<{ Querystring: { table: string } }>('/ingest/rejects/replay', {
    preHandler: requireToken,
    schema: {
      summary: 'Re-validate the stored rejects of a table; rows that now pass are inserted', tags: ['ingest'], security,
      querystring: { type: 'object', properties: { table: tableParam }, required: ['table'] },
      response: { 200: anyObject, ...errors },
    },
  }, async (request) => {
    const [result] = await sql`call api.replay_rejects(${request.query.table}, 'api')`
    request.batchLog = { ...result }
    return { table: request.query.table, ...result }
  })

  // Backups: the runner writes and reads the files; the database locks, stages and swaps.
  const backupOptions = { dir: databaseFolder(options.backupDir, api.roles.database), keep: options.backupKeep ?? 7 }
  const backupsRunning = new Set<string>()
  const tableOnly = { type: 'object', properties: { table: tableParam }, required: ['table'] }

  app.post<{ Params: { table: string } }>('/tables/:table/backup', {
    preHandler: requireToken,
    schema: {
      summary: 'Back up a table to an Avro file', tags: ['backup'], security, params: tableOnly,
      response: {
        201: { type: 'object', properties: { table: { type: 'string' }, file: { type: 'string' }, path: { type: 'string', description: 'relative to BACKUP_DIR/<database>' }, rows: { type: 'integer' }, bytes: { type: 'integer' }, sha256: { type: 'string' } } },
        ...errors,
      },
    },
    config: { unbounded: true },
  }, async (request, reply) => {
    const { table } = request.params
    // One backup per table and a few in all: each holds a connection for as long as it runs.
    if (backupsRunning.has(table) || backupsRunning.size >= limits.backupConcurrency) {
      throw Object.assign(new Error(backupsRunning.has(table) ? `a backup of ${table} is already running: try again when it is done`
        : `${backupsRunning.size} backups are already running (BACKUP_CONCURRENCY): try again shortly`), { code: 'BACKUP_BUSY' })
    }
    backupsRunning.add(table)
    const r = await backupTable(runner, table, backupOptions).finally(() => backupsRunning.delete(table))
    request.batchLog = { file: r.file, rows: r.rows }
    return reply.code(201).send({ table: r.table, file: r.file, path: r.file, rows: r.rows, bytes: r.bytes, sha256: r.sha256 })
  })

  app.get<{ Params: { table: string } }>('/tables/:table/backups', {
    schema: {
      summary: 'A table\'s backups, newest first, then its pre-restore snapshots', tags: ['backup'], params: tableOnly,
      response: { 200: { type: 'array', items: anyObject }, ...errors },
    },
  }, async (request) => {
    await sql`select api.check_table(${request.params.table})` // 404 for an unknown table
    return listBackups(backupOptions.dir, request.params.table)
  })

  app.post<{ Params: { table: string }; Body: { file?: string; newest?: true; dry_run?: boolean } }>('/tables/:table/restore', {
    preHandler: requireToken,
    schema: {
      summary: 'Restore a table from a file named in the list, or from its newest backup with {"newest": true}', tags: ['backup'], security, params: tableOnly,
      // A restore says what it restores: a bodiless POST (which any page can send) restores nothing.
      body: {
        type: 'object',
        properties: {
          file: { type: 'string', pattern: '^(pre-restore/)?[0-9A-Za-z._-]+\\.avro$', description: 'a file from GET /tables/{table}/backups' },
          newest: { type: 'boolean', enum: [true], description: 'restore the newest backup' },
          dry_run: { type: 'boolean', default: false },
        },
        oneOf: [{ required: ['file'] }, { required: ['newest'] }],
        additionalProperties: false,
      },
      response: { 200: anyObject, ...errors },
    },
    config: { unbounded: true },
  }, async (request) => {
    const { table } = request.params
    const result = await restoreTables(runner, [table], { ...backupOptions, files: { [table]: request.body.file }, dryRun: request.body.dry_run })
    request.batchLog = { ...result.tables[0] }
    return { dry_run: result.dryRun, ...result.tables[0] }
  })

  // Reports: JSON arrays, or CSV with Accept: text/csv or ?format=csv.
  const reportQuery = {
    year: { type: 'integer', minimum: 1, maximum: 9999, default: 2021 },
    format: { type: 'string', enum: ['json', 'csv'] },
  }
  const wantsCsv = (request: FastifyRequest<{ Querystring: { format?: string } }>) =>
    request.query.format ? request.query.format === 'csv' : (request.headers.accept ?? '').includes('text/csv')
  const sendReport = (request: FastifyRequest<{ Querystring: { format?: string } }>, reply: FastifyReply, rows: object[], columns: string[]) =>
    wantsCsv(request) ? reply.type('text/csv; charset=utf-8').send(toCsv(rows, columns)) : reply.send(rows)
  const rowsOf = (properties: Record<string, object>) => ({ type: 'array', items: { type: 'object', properties } })

  app.get<{ Querystring: { year: number; format?: string } }>('/reports/hires-by-quarter', {
    schema: {
      summary: 'Hires per department and job in each quarter (UTC) of a year', tags: ['reports'],
      querystring: { type: 'object', properties: reportQuery, additionalProperties: false },
      response: {
        200: rowsOf({ department: { type: 'string' }, job: { type: 'string' }, q1: { type: 'integer' }, q2: { type: 'integer' }, q3: { type: 'integer' }, q4: { type: 'integer' } }),
        ...errors,
      },
    },
  }, async (request, reply) => sendReport(request, reply, (await hiresByQuarter(sql, request.query.year)).rows, QUARTER_COLUMNS))

  app.get<{ Querystring: { year: number; mean_over: MeanOver; format?: string } }>('/reports/departments-above-mean', {
    schema: {
      summary: 'Departments hiring above the mean; the X-Mean and X-Mean-Over headers say which mean', tags: ['reports'],
      querystring: {
        type: 'object',
        properties: { ...reportQuery, mean_over: { type: 'string', enum: ['all', 'hiring'], default: 'all' } },
        additionalProperties: false,
      },
      response: { 200: rowsOf({ id: { type: 'integer' }, department: { type: 'string' }, hired: { type: 'integer' } }), ...errors },
    },
  }, async (request, reply) => {
    const metric = await departmentsAboveMean(sql, request.query.year, request.query.mean_over)
    reply.header('x-mean-over', request.query.mean_over).header('x-mean', metric.mean === null ? '' : String(metric.mean))
    return sendReport(request, reply, metric.rows, ABOVE_MEAN_COLUMNS)
  })

  app.get('/schedule', {
    schema: {
      summary: 'The pg_cron jobs of this database with their last runs, and recent backup requests', tags: ['schedule'],
      response: { 200: anyObject, ...errors },
    },
  }, async () => (await sql`select api.schedule_status() as s`)[0].s)

  app.get('/data-dictionary', {
    schema: { summary: 'The rules as data: tables, fields, types, limits, reason codes', tags: ['reference'], response: { 200: anyObject, ...errors } },
  }, async () => (await sql`select api.data_dictionary() as d`)[0].d)

  app.get('/stats', {
    schema: { summary: 'Rows received, inserted, unchanged, rejected per table; rejects per reason', tags: ['reference'], response: { 200: anyObject, ...errors } },
  }, async () => (await sql`select api.stats() as s`)[0].s)

  app.get('/health', {
    schema: {
      summary: 'Within a second: 200 when the database answers (status "degraded" and what is slow when the pool is exhausted or requests wait for locks), 503 when it does not',
      tags: ['reference'],
      response: { 200: anyObject, 503: anyObject },
    },
    config: { pool: false },
  }, async (_request, reply) => {
    const pool = { size: requests.size, in_use: requests.used, waiting: requests.waiting }
    const slow: string[] = []
    if (requests.used >= requests.size) slow.push(`pool exhausted: all ${requests.size} connections busy, ${requests.waiting} requests waiting`)
    healthSql ??= connect(healthUrl, { max: 1, connect_timeout: 1, idle_timeout: 30, connection: { application_name: 'hirebase-api-health', statement_timeout: '900' } as Record<string, string> })
    const probe = healthSql<{ lock_waits: number }[]>`
      select count(*)::integer as lock_waits from pg_stat_activity
       where datname = current_database() and application_name = 'hirebase-api' and wait_event_type = 'Lock'`
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), 900) })
    try {
      const answer = await Promise.race([probe, late])
      if (answer === 'late') throw Object.assign(new Error('the database did not answer within 900 ms'), { code: 'late' })
      const lockWaits = answer[0].lock_waits
      if (lockWaits > 0) slow.push(`lock waits: ${lockWaits} requests waiting for a table lock (a backup, restore or load holds it)`)
      return { status: slow.length ? 'degraded' : 'ok', database: 'ok', pool, lock_waits: lockWaits, slow }
    } catch (err) {
      // A frozen or lost connection is dropped, so the next probe starts afresh.
      const stale = healthSql
      healthSql = undefined
      probe.catch(() => {})
      void stale.end({ timeout: 0 }).catch(() => {})
      const code = (err as { code?: string }).code
      slow.unshift(code === 'late' ? 'database not answering: no reply within 900 ms' : `database unreachable: ${(err as Error).message}`)
      reply.header('retry-after', '1')
      return reply.code(503).send({ status: 'unavailable', database: code === 'late' ? 'not answering' : 'unreachable', pool, slow,
        error: { code: 'database_unavailable', message: `the database is not available (${slow[0]}); try again shortly` } })
    } finally {
      clearTimeout(timer)
    }
  })

  app.get('/openapi.json', { schema: { hide: true }, config: { pool: false } }, async () => app.swagger())
  app.addHook('onClose', async () => { await healthSql?.end({ timeout: 1 }) })

  return { app, sql, runner, api }
}
