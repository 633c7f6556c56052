// What every route plugin of the API is given: the pools, the limits and bounds, the token check.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Sql } from '../database.ts'
import type { ReplicaSet } from '../replicas.ts'
import type { Gate, Limits } from './limits.ts'
import type { Bounds } from './schemas.ts'

declare module 'fastify' {
  // wrote: a write's handler ran (its answer carries X-Hirebase-LSN).
  interface FastifyRequest {
    batchLog?: Record<string, unknown>
    wrote?: boolean
  }
  // pool: false — the route uses no pool connection; unbounded: no answer deadline.
  interface FastifyContextConfig {
    pool?: boolean
    unbounded?: boolean
  }
}

/** A write's answer carries its WAL position in LSN; a read may send it back (or ?min_lsn=). SERVED_BY
 *  names who answered: primary or replica-N (docs/scale-out.md, "Read replicas"). */
export const REPLICA_HEADERS = { lsn: 'x-hirebase-lsn', servedBy: 'x-hirebase-served-by' } as const

type Security = { [scheme: string]: string[] }[]

export interface ApiContext {
  /** Every request's statements, as the API's login role: on a replica for the read routes (src/replicas.ts), else on the primary. */
  sql: Sql
  /** The primary and the read replicas, for /health. */
  replicas: ReplicaSet
  /** The owner's pool: only the fixed statements of backups and restores. */
  runner: Sql
  /** The owner's URL, for /health's own connection. */
  databaseUrl: string
  limits: Limits
  bounds: Bounds
  /** The requests' share of the pool (shown by /health). */
  requests: Gate
  /** Where this database's backups live, and how many to keep per table. */
  backups: { dir: string; keep: number }
  /** The preHandler of every write. */
  requireToken: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
  /** The OpenAPI security requirements of writes and of reads (none without API_TOKEN, READ_TOKEN). */
  security: Security
  readSecurity: Security
  /** A read's error responses: these statuses, 401 when READ_TOKEN is set, 503. */
  readErrors: (...statuses: number[]) => Record<string, object>
  /** A write's error responses: these statuses, 400, 401 with API_TOKEN, 403 (origin), 413, 415, 503. */
  writeErrors: (...statuses: number[]) => Record<string, object>
}
