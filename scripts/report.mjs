#!/usr/bin/env zx
// @ts-check
// The hiring reports as HTML and CSV (--help).
import { lib } from './ts.mjs'

const { parseCommandLine, year } = await lib('args.ts')
const { values } = parseCommandLine(import.meta.url, {
  usage: ['[--year 2021] [--out reports/] [--force]'],
  summary:
    'Writes the hiring reports as HTML and CSV for every year with hires, and for --year (whose pages\n' +
    'say so when it has none), with an index.html linking them. Files are 0600 in a 0700 folder (FILE_MODE\n' +
    'relaxes it); a folder other users may write is refused unless --force.',
  options: {
    year: { type: 'string', arg: '<year>', help: 'also write this year (default: only the years with hires)', parse: year },
    out: { type: 'string', arg: '<folder>', help: 'where to write (default REPORTS_DIR, or reports/)' },
    force: { type: 'boolean', help: 'write into a folder other users may write, or of another user' },
  },
  environment: [
    ['REPORTS_DIR', 'folder of the reports (default reports/)'],
    ['FILE_MODE', 'mode of the files written (default 0600)'],
  ],
  examples: ['npx zx scripts/report.mjs --year 2021 --out /tmp/reports'],
})

const { run } = await lib('cli.ts')
const { reportCommand, REPORTS_DIR } = await lib('commands.ts')

await run(async ({ url }) => {
  await reportCommand(url, values.year, values.out ?? (process.env.REPORTS_DIR || REPORTS_DIR), values.force)
})
