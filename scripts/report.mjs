#!/usr/bin/env zx
// Usage: zx scripts/report.mjs [--year 2021] [--out reports/] — the hiring reports as HTML and CSV.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { reportCommand, REPORTS_DIR } = await lib('tasks.ts')

await run(async ({ url }) => {
  await reportCommand(url, Number(argv.year ?? 2021), argv.out ? String(argv.out) : process.env.REPORTS_DIR || REPORTS_DIR)
})
