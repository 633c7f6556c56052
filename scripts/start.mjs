#!/usr/bin/env zx
// Usage: npm start — migrate, load the sample data, build the reports, then serve the API until Ctrl-C.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { loadSamples, reportCommand, REPORTS_DIR, serve } = await lib('tasks.ts')

await run(async ({ url }, shutdown) => {
  // A signal before the API is up abandons the load (rolled back) and exits.
  await loadSamples(url, undefined, { signal: shutdown })
  if (shutdown.aborted) return
  await reportCommand(url, 2021, process.env.REPORTS_DIR || REPORTS_DIR)
  if (shutdown.aborted) return
  await serve(url, shutdown)
})
