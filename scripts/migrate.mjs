#!/usr/bin/env zx
// Usage: zx scripts/migrate.mjs — apply pending migrations, then re-apply sql/procedures and sql/views.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { migrate } = await lib('migrate.ts')

await run(async ({ url }) => {
  const { migrations, definitions } = await migrate(url)
  console.log(`migrations applied: ${migrations.length ? migrations.join(', ') : 'none pending'}`)
  console.log(`definitions applied: ${definitions.length} files`)
})
