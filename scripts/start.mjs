#!/usr/bin/env zx
// @ts-check
// npm start: migrate, load the sample data, build the reports, then serve the API (--help).
import { lib } from './ts.mjs'

const { parseCommandLine } = await lib('args.ts')
parseCommandLine(import.meta.url, {
  usage: [''],
  summary:
    'Migrates, loads the sample data of data/historical/, writes the reports of every year with hires\n' +
    '(and of 2021) to REPORTS_DIR, then serves the API until Ctrl-C (npm start runs this).',
  options: {},
  environment: [
    ['HOST, PORT', 'where the API listens (default 127.0.0.1:8000)'],
    ['API_TOKEN', 'bearer token for writes'],
    ['REPORTS_DIR', 'folder of the reports (default reports/)'],
  ],
  examples: ['npm start', 'PORT=8080 npx zx scripts/start.mjs'],
})

const { run } = await lib('cli.ts')
const { loadSamples, serve } = await lib('tasks.ts')
const { reportCommand, REPORTS_DIR } = await lib('commands.ts')

await run(async ({ url }, shutdown) => {
  // A signal before the API is up abandons the load (rolled back) and exits.
  await loadSamples(url, undefined, { signal: shutdown })
  if (shutdown.aborted) return
  await reportCommand(url, 2021, process.env.REPORTS_DIR || REPORTS_DIR)
  if (shutdown.aborted) return
  await serve(url, shutdown)
})
