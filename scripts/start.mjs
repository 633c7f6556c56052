#!/usr/bin/env zx
// Usage: npm start — migrate, load the sample data, then report what is there.
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { loadSamples } = await lib('tasks.ts')

await run(async ({ url }) => {
  await loadSamples(url)
  console.log(`\nDone. Look around with: zx scripts/db.mjs (keeps the database up and prints the psql command)`)
})
