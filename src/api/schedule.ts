// The schedule route: this database's pg_cron jobs with their last runs, and backup requests.
import type { FastifyPluginAsync } from 'fastify'
import type { ApiContext } from './context.ts'
import { anyObject } from './schemas.ts'

export const scheduleRoutes: FastifyPluginAsync<ApiContext> = async (app, { sql, readSecurity, readErrors }) => {
  app.get(
    '/schedule',
    {
      schema: {
        summary: 'The pg_cron jobs of this database with their last runs, and recent backup requests',
        operationId: 'getSchedule',
        tags: ['schedule'],
        security: readSecurity,
        response: { 200: anyObject, ...readErrors() },
      },
    },
    async () => (await sql`select api.schedule_status() as s`)[0].s,
  )
}
