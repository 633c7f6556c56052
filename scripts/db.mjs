#!/usr/bin/env zx
// @ts-check
// Start the embedded PostgreSQL (migrated) and keep it running until Ctrl-C (--help).
import { lib } from './ts.mjs'

const { parseCommandLine } = await lib('args.ts')
parseCommandLine(import.meta.url, {
  usage: [''],
  summary:
    'Starts the embedded PostgreSQL of .pgdata/ (migrated) and keeps it running until Ctrl-C, printing a\n' +
    'psql command that connects to it (its password goes to .pgdata/pgpass, 0600, not on the screen).\n' +
    'While it runs, the other scripts of this checkout use it. If a server already runs (npm start,\n' +
    'another db.mjs), it says so and leaves it be. With DATABASE_URL set, it only migrates that database.',
  options: {},
  examples: ['npx zx scripts/db.mjs'],
})

const { run } = await lib('cli.ts')
const { migrate } = await lib('migrate.ts')
const { embeddedPsqlCommand } = await lib('database.ts')

await run(async ({ url, origin }, shutdown) => {
  await migrate(url)
  if (origin === 'external') {
    console.log('DATABASE_URL is set: its database is migrated, and there is no server to keep running.\n  psql "$DATABASE_URL"')
    return
  }
  const psql = await embeddedPsqlCommand(url)
  if (origin === 'reused') {
    console.log(
      `The embedded PostgreSQL is already running (started by another process, which stops it): migrated it, leaving it running.\n  ${psql}`,
    )
    return
  }
  console.log(`PostgreSQL is ready; the other scripts of this checkout use it while it runs.\n  ${psql}\nCtrl-C stops it.`)
  // Until Ctrl-C (run() then stops the server this process started).
  await new Promise((resolve) => shutdown.addEventListener('abort', resolve, { once: true }))
})
