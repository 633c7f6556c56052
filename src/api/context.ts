// What every route plugin of the API is given: the pools, the limits, the token check.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Sql } from '../database.ts'
import type { Gate, Limits } from './limits.ts'

declare module 'fastify' {
  interface FastifyRequest { batchLog?: Record<string, unknown> }
  // pool: false — the route uses no pool connection; unbounded: no answer deadline.
  interface FastifyContextConfig { pool?: boolean; unbounded?: boolean }
}

export interface ApiContext {
  /** Every request's statements, as the API's login role. */
  sql: Sql
  /** The owner's pool: only the fixed statements of backups and restores. */
  runner: Sql
  /** The owner's URL, for /health's own connection. */
  databaseUrl: string
  limits: Limits
  /** The requests' share of the pool (shown by /health). */
  requests: Gate
  /** Where this database's backups live, and how many to keep per table. */
  backups: { dir: string; keep: number }
  /** The preHandler of every write. */
  requireToken: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
  /** The OpenAPI security requirement of writes (none without API_TOKEN). */
  security: { [scheme: string]: string[] }[]
}
