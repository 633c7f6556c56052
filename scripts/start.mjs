#!/usr/bin/env zx
// Usage: npm start — migrate, load the sample data, build the reports, then serve the API until Ctrl-C.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { loadSamples, reportCommand, REPORTS_DIR, serve } = await lib('tasks.ts')

await run(async ({ url }, shutdown) => {
  await loadSamples(url)
  await reportCommand(url, 2021, process.env.REPORTS_DIR || REPORTS_DIR)
  await serve(url, shutdown)
})
