// Reference routes: the rules as data, the counts, and the health probe.
import type { FastifyPluginAsync } from 'fastify'
import { connect, type Sql } from '../database.ts'
import type { ApiContext } from './context.ts'
import { anyObject } from './schemas.ts'

export const referenceRoutes: FastifyPluginAsync<ApiContext> = async (
  app,
  { sql, databaseUrl, requests, replicas, readSecurity, readErrors },
) => {
  app.get(
    '/data-dictionary',
    {
      schema: {
        summary: 'The rules as data: tables, fields, types, limits, reason codes',
        operationId: 'getDataDictionary',
        tags: ['reference'],
        security: readSecurity,
        response: { 200: anyObject, ...readErrors() },
      },
    },
    async () => (await sql`select api.data_dictionary() as d`)[0].d,
  )

  app.get(
    '/stats',
    {
      schema: {
        summary: 'Rows received, inserted, unchanged, rejected per table; rejects per reason',
        operationId: 'getStats',
        tags: ['reference'],
        security: readSecurity,
        response: { 200: anyObject, ...readErrors() },
      },
    },
    async () => (await sql`select api.stats() as s`)[0].s,
  )

  // /health has a connection of its own, so a busy pool cannot hide the database's state.
  let healthSql: Sql | undefined
  app.get(
    '/health',
    {
      schema: {
        summary:
          'Within a second: 200 when the database answers (status "degraded" and what is slow when the pool is exhausted, requests wait for locks, ' +
          'or a replica is out), 503 when it does not (200 "degraded" while replicas still serve the reads); each replica\'s state and lag',
        operationId: 'getHealth',
        tags: ['reference'],
        response: { 200: anyObject, 503: anyObject },
      },
      config: { pool: false },
    },
    async (_request, reply) => {
      const pool = { size: requests.size, in_use: requests.used, waiting: requests.waiting }
      const slow: string[] = []
      // Each replica's state and lag (DATABASE_REPLICA_URLS), from the last probe: no credentials.
      const replication = replicas.replicas.length ? { replication: replicas.health() } : {}
      for (const r of replication.replication?.replicas ?? [])
        if (!r.in_rotation) slow.push(`${r.name} out of the rotation: ${r.state}${r.error ? ` (${r.error})` : ''}`)
      if (requests.used >= requests.size)
        slow.push(`pool exhausted: all ${requests.size} connections busy, ${requests.waiting} requests waiting`)
      // The connect timeout is well past the 900 ms verdict: a server that accepts but never answers
      // (frozen) is 'not answering'; only a refused or failed connection is 'unreachable'.
      healthSql ??= connect(databaseUrl, {
        max: 1,
        connect_timeout: 3,
        idle_timeout: 30,
        connection: { application_name: 'hirebase-api-health', statement_timeout: '900' } as Record<string, string>,
      })
      const probe = healthSql<{ lock_waits: number }[]>`
      select count(*)::integer as lock_waits from pg_stat_activity
       where datname = current_database() and application_name = 'hirebase-api' and wait_event_type = 'Lock'`
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), 900)
      })
      try {
        const answer = await Promise.race([probe, late])
        if (answer === 'late') throw Object.assign(new Error('the database did not answer within 900 ms'), { code: 'late' })
        const lockWaits = answer[0].lock_waits
        if (lockWaits > 0) slow.push(`lock waits: ${lockWaits} requests waiting for a table lock (a backup, restore or load holds it)`)
        return { status: slow.length ? 'degraded' : 'ok', database: 'ok', pool, lock_waits: lockWaits, slow, ...replication }
      } catch (err) {
        // A frozen or lost connection is dropped, so the next probe starts afresh.
        const stale = healthSql
        healthSql = undefined
        probe.catch(() => {})
        void stale.end({ timeout: 0 }).catch(() => {})
        const code = (err as { code?: string }).code
        slow.unshift(code === 'late' ? 'database not answering: no reply within 900 ms' : `database unreachable: ${(err as Error).message}`)
        const database = code === 'late' ? 'not answering' : 'unreachable'
        // The reads go on from the replicas: still worth routing to, writes answer 503.
        if (replicas.inRotation)
          return {
            status: 'degraded',
            database,
            pool,
            slow: [...slow, `reads are served by ${replicas.inRotation} replica(s); writes answer 503`],
            ...replication,
          }
        reply.header('retry-after', '1')
        return reply.code(503).send({
          status: 'unavailable',
          database,
          pool,
          slow,
          ...replication,
          error: { code: 'database_unavailable', message: `the database is not available (${slow[0]}); try again shortly` },
        })
      } finally {
        clearTimeout(timer)
      }
    },
  )

  app.addHook('onClose', async () => {
    await healthSql?.end({ timeout: 1 })
  })
}
