#!/usr/bin/env zx
// Usage: zx scripts/db.mjs — start the embedded PostgreSQL (migrated) and keep it running
// until Ctrl-C, printing the URL for psql and for DATABASE_URL in other shells.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { migrate } = await lib('migrate.ts')

await run(async ({ url }) => {
  await migrate(url)
  console.log(`PostgreSQL is ready:\n  psql '${url}'\nCtrl-C stops it.`)
  await new Promise(() => {})
})
