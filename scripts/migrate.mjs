#!/usr/bin/env zx
// @ts-check
// Apply pending migrations, then re-apply sql/procedures and sql/views (--help).
import { lib } from './ts.mjs'

const { parseCommandLine } = await lib('args.ts')
parseCommandLine(import.meta.url, {
  usage: [''],
  summary:
    'Applies the pending migrations of sql/migrations/, then re-applies every definition in\n' +
    'sql/procedures/ and sql/views/, all in one transaction (a run applies everything or nothing).',
  options: {},
  examples: ['DATABASE_URL=postgres://me@localhost/hr npx zx scripts/migrate.mjs'],
})

const { run } = await lib('cli.ts')
const { migrate } = await lib('migrate.ts')

await run(async ({ url }) => {
  const { migrations, definitions } = await migrate(url)
  console.log(`migrations applied: ${migrations.length ? migrations.join(', ') : 'none pending'}`)
  console.log(`definitions applied: ${definitions.length} files`)
})
