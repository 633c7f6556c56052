// The schedule route: this database's pg_cron jobs with their last runs, and backup requests.
import type { FastifyPluginAsync } from 'fastify'
import type { ApiContext } from './context.ts'
import { anyObject, errors } from './schemas.ts'

export const scheduleRoutes: FastifyPluginAsync<ApiContext> = async (app, { sql }) => {
  app.get('/schedule', {
    schema: {
      summary: 'The pg_cron jobs of this database with their last runs, and recent backup requests', tags: ['schedule'],
      response: { 200: anyObject, ...errors },
    },
  }, async () => (await sql`select api.schedule_status() as s`)[0].s)
}
