// The API describing itself: the OpenAPI document (collected from the routes' schemas), the
// Swagger UI at /docs (served from node_modules: it works offline), and GET / with the links.
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { projectVersion } from '../paths.ts'
import type { ApiContext } from './context.ts'
import { DOCS_PREFIX } from './guard.ts'
import { rowBodyDoc, type Bounds } from './schemas.ts'

// The UI's pages load only their own scripts, styles and the spec; nothing from elsewhere. The hash
// admits the one inline style the Swagger UI bundle (5.x) applies; nothing else inline runs.
const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** Collects the routes registered after it into the OpenAPI document. */
export async function installSpec(app: FastifyInstance, bounds: Bounds): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'hirebase API',
        version: projectVersion,
        description:
          'Batch ingest and look-ups over the hirebase procedures. Errors are `{"error": {"code", "message"}}` (docs/errors.md). ' +
          'Besides the responses listed per route, every route may answer 421 `unknown_host` (a Host that is not this server), ' +
          '429 `rate_limited` (with Retry-After) and 500 `internal_error`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    // Ingest bodies are documented here, not validated by fastify: the database validates them.
    transformObject: (doc) => {
      if (!('openapiObject' in doc)) return doc.swaggerObject
      const post = doc.openapiObject.paths?.['/tables/{table}/rows']?.post
      if (post) post.requestBody = rowBodyDoc(bounds) as never
      return doc.openapiObject
    },
  })
}

export const docsRoutes: FastifyPluginAsync<ApiContext> = async (app) => {
  app.get(
    '/',
    {
      schema: {
        summary: "Where to look: the API's documentation and the routes to start with",
        operationId: 'index',
        tags: ['reference'],
        response: {
          200: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              version: { type: 'string' },
              links: { type: 'object', additionalProperties: { type: 'string' } },
            },
          },
        },
      },
      config: { pool: false },
    },
    async () => ({
      name: 'hirebase API',
      version: projectVersion,
      links: {
        docs: `${DOCS_PREFIX}`,
        openapi: '/openapi.json',
        health: '/health',
        data_dictionary: '/data-dictionary',
        stats: '/stats',
        rows: '/tables/{table}/rows',
        ingest_log: '/ingest/batches',
        reports: '/reports/hires-by-quarter',
        schedule: '/schedule',
      },
    }),
  )
  app.get('/openapi.json', { schema: { hide: true }, config: { pool: false } }, async () => app.swagger())
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, staticCSP: DOCS_CSP, uiConfig: { deepLinking: true } })
}
