#!/usr/bin/env zx
// Usage: zx scripts/serve.mjs — serve the REST API on HOST:PORT (default 127.0.0.1:8000), migrating first.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { serve } = await lib('tasks.ts')
const { migrate } = await lib('migrate.ts')

await run(async ({ url }, shutdown) => {
  await migrate(url)
  await serve(url, shutdown)
})
