#!/usr/bin/env zx
// @ts-check
// Serve the REST API, migrating first (--help).
import { lib } from './ts.mjs'

const { parseCommandLine } = await lib('args.ts')
parseCommandLine(import.meta.url, {
  usage: [''],
  summary: 'Migrates, then serves the REST API on HOST:PORT until Ctrl-C (browse it at /docs; OpenAPI at /openapi.json).',
  options: {},
  environment: [
    ['HOST, PORT', 'where to listen (default 127.0.0.1:8000; another address needs API_TOKEN)'],
    ['API_TOKEN', 'bearer token for writes (unset: writes are open to local clients)'],
    ['READ_TOKEN, API_TOKEN_READS', 'close reads too: a read token, or 1 to use API_TOKEN'],
    ['ALLOWED_HOSTS, ALLOWED_ORIGINS', 'extra Host names, and origins whose pages may write'],
    ['API_DATABASE_URL', 'how the API logs in (a member of the API role only)'],
    ['RATE_LIMIT_MAX', 'requests per client per RATE_LIMIT_WINDOW_SECONDS (600 per 60)'],
  ],
  examples: ['PORT=8080 API_TOKEN=s3cret npx zx scripts/serve.mjs'],
})

const { run } = await lib('cli.ts')
const { serve } = await lib('tasks.ts')
const { migrate } = await lib('migrate.ts')

await run(async ({ url }, shutdown) => {
  await migrate(url)
  await serve(url, shutdown)
})
