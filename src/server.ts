// The REST API, assembled: the pools, fastify with its guards and hooks, and one plugin per
// resource under src/api/. Every handler parses the request, makes one api.* call, and maps
// errors; the rules live in the database, so nothing here re-checks a row.
import { randomUUID } from 'node:crypto'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { connect, type Sql } from './database.ts'
import { databaseFolder } from './backup/folders.ts'
import { apiConnection, type ApiConnection } from './roles.ts'
import type { ApiContext } from './api/context.ts'
import { installGuards, redactUrl, tokenCheck, type GuardOptions } from './api/guard.ts'
import { peersKnown } from './api/peer.ts'
import { installHooks } from './api/hooks.ts'
import { BODY_LIMIT, gate, limitsFromEnv, type Limits } from './api/limits.ts'
import { errorsOf, type Bounds } from './api/schemas.ts'
import { docsRoutes, installSpec } from './api/docs.ts'
import { rowsRoutes } from './api/rows.ts'
import { ingestLogRoutes } from './api/ingest-log.ts'
import { backupRoutes } from './api/backups.ts'
import { reportRoutes } from './api/reports.ts'
import { scheduleRoutes } from './api/schedule.ts'
import { referenceRoutes } from './api/reference.ts'
import { ReplicaSet, replicaSettingsFromEnv, routedSql, type ReplicaSettings } from './replicas.ts'

export { checkListenAddress, hostAllowed, isLoopback, listFromEnv, redactUrl, tokenFromEnv } from './api/guard.ts'
export { limitsFromEnv, type Limits } from './api/limits.ts'

export interface ServerOptions extends GuardOptions {
  /** The owner's URL: the runner's fixed statements (backups, restores) run on it, nothing else. */
  databaseUrl: string
  /** How the API's own pool logs in (src/roles.ts); worked out from databaseUrl when absent. */
  api?: ApiConnection
  /** Where backups live (BACKUP_DIR) and how many to keep per table (BACKUP_KEEP). */
  backupDir: string
  backupKeep?: number
  logLevel?: string
  /** Timeouts, pool size and the caps on what clients can make the server and the database hold; from the environment when not given. */
  limits?: Limits
  /** Hot standbys for the read routes (DATABASE_REPLICA_URLS, REPLICA_MAX_LAG, REPLICA_WAIT_MS); from the environment when not given. */
  replicas?: ReplicaSettings
}

/** The bounds the routes' schemas check, as the database sets them (SQL is their one home). */
async function boundsOf(sql: Sql): Promise<Bounds> {
  const [{ d }] = await sql<
    {
      d: { batch: { max_rows: number }; pages: Bounds['pages']; tables: { fields: { kind: string; range: [number, number] | null }[] }[] }
    }[]
  >`
    select api.data_dictionary() as d`
  const idRange = d.tables.flatMap((t) => t.fields).find((f) => f.kind === 'id')?.range
  if (!idRange) throw new Error('api.data_dictionary() gives no id range: is the database migrated?')
  return { maxBatchRows: d.batch.max_rows, maxId: idRange[1], pages: d.pages }
}

export async function buildServer(options: ServerOptions): Promise<{ app: FastifyInstance; sql: Sql; runner: Sql; api: ApiConnection }> {
  const limits = options.limits ?? limitsFromEnv()
  const api = options.api ?? (await apiConnection(options.databaseUrl))
  // Every request's statements run on this pool, as the API's login role (or, in the fallback,
  // after SET ROLE).
  const poolOptions = {
    max: limits.poolSize,
    idle_timeout: 60,
    connect_timeout: 5,
    connection: {
      ...(api.role ? { role: api.role } : {}),
      application_name: 'hirebase-api',
      statement_timeout: String(limits.statementTimeoutMs),
      lock_timeout: String(limits.lockTimeoutMs),
    } as Record<string, string>,
    // bigint (batch ids, counts) as JSON numbers: they stay far below 2^53.
    types: { int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) } },
  }
  const sql = connect(api.url, poolOptions)
  let bounds: Bounds
  try {
    bounds = await boundsOf(sql)
  } catch (err) {
    await sql.end({ timeout: 1 })
    throw err
  }
  // The runner's pool (the owner): only the fixed statements of backups and restores, which
  // need runner.*; no statement on it is built from a request. Room for the backup runner's
  // claim and backup, and the API's backups.
  const runner = connect(options.databaseUrl, {
    max: limits.backupConcurrency + 2,
    idle_timeout: 60,
    connect_timeout: 5,
    connection: { application_name: 'hirebase-runner' },
  })
  // The caps the database's triggers read (sql/procedures/760-internal.bounds.sql): rows of
  // internal.caps, which no session of a caller can change; those not set go back to the default.
  try {
    await runner`select runner.set_caps(${runner.json(limits.caps)})`
  } catch (err) {
    await Promise.all([sql.end({ timeout: 1 }), runner.end({ timeout: 1 })])
    throw err
  }
  // Requests share the pool less two connections, which stay for the backup runner (its
  // claim and its backup); a request that cannot get one in time is a 503, not a queue.
  const requests = gate(limits.poolSize - 2)
  // The read routes' replicas (none unless DATABASE_REPLICA_URLS is set); the same pool options, logged in as on the primary.
  const replicas = new ReplicaSet(
    { name: 'primary', sql, requests },
    api.url,
    options.replicas ?? replicaSettingsFromEnv(),
    poolOptions,
    limits.poolSize,
    (level, msg, fields) => app.log[level](fields, msg),
  )
  const app = Fastify({
    connectionTimeout: limits.connectionTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Node checks request timeouts on this interval (30 s by default), and only when the
    // headers' own timeout is no longer than the request's.
    http: {
      connectionsCheckingInterval: Math.min(1000, limits.requestTimeoutMs),
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: Math.min(limits.requestTimeoutMs, 60_000),
    } as never,
    logger: {
      level: options.logLevel ?? 'info',
      stream: process.stderr,
      serializers: { req: (req: { method: string; url: string }) => ({ method: req.method, url: redactUrl(req.url) }) },
    },
    // One line per request, written by our onResponse hook (with the batch's counts).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    // The schema and the value on each validation error, for messages that name the bounds,
    // an example and what was given (src/errors.ts).
    // removeAdditional off: an unknown query parameter or body field is refused, not dropped.
    ajv: { customOptions: { verbose: true, removeAdditional: false } },
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    return503OnClosing: true,
  })

  await installSpec(app, bounds)

  // Requests per client: a flood gets 429 with Retry-After before it reaches the database.
  await app.register(rateLimit, { max: limits.rateLimitMax, timeWindow: limits.rateLimitWindowSeconds * 1000 })
  app.addHook('onClose', async () => {
    await runner.end({ timeout: 5 })
  })
  app.addHook('onClose', () => replicas.close())
  await installGuards(app, options)
  installHooks(app, limits, replicas)
  await replicas.start()

  const context: ApiContext = {
    sql: routedSql(replicas),
    runner,
    replicas,
    databaseUrl: options.databaseUrl,
    limits,
    bounds,
    requests,
    backups: { dir: databaseFolder(options.backupDir, api.roles.database), keep: options.backupKeep ?? 7 },
    requireToken: tokenCheck(options.token),
    security: options.token ? [{ bearer: [] }] : [],
    readSecurity: options.readToken ? [{ bearer: [] }] : [],
    // Every read may refuse an unknown query parameter (400), and on Linux another local user without a token (403).
    readErrors: (...statuses) => errorsOf([...statuses, 400, ...(options.readToken ? [401] : []), ...(peersKnown() ? [403] : []), 503]),
    writeErrors: (...statuses) => errorsOf([...statuses, 400, ...(options.token ? [401] : []), 403, 413, 415, 503]),
  }
  for (const routes of [docsRoutes, rowsRoutes, ingestLogRoutes, backupRoutes, reportRoutes, scheduleRoutes, referenceRoutes]) {
    await app.register(routes, context)
  }
  return { app, sql, runner, api }
}
