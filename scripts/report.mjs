#!/usr/bin/env zx
// Usage: zx scripts/report.mjs [--year 2021] [--out reports/] [--force] — the hiring reports as HTML and CSV.
// Files are 0600 in a 0700 folder (FILE_MODE relaxes it); a folder other users may write is refused unless --force.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { reportCommand, REPORTS_DIR } = await lib('tasks.ts')

await run(async ({ url }) => {
  await reportCommand(url, Number(argv.year ?? 2021), argv.out ? String(argv.out) : process.env.REPORTS_DIR || REPORTS_DIR, Boolean(argv.force))
})
