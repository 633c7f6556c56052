#!/usr/bin/env zx
// Usage: npm start — migrate, load the sample data, then serve the API until Ctrl-C.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { loadSamples, serve } = await lib('tasks.ts')

await run(async ({ url }, shutdown) => {
  await loadSamples(url)
  await serve(url, shutdown)
})
