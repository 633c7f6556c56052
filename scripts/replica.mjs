#!/usr/bin/env zx
// @ts-check
// Make a local hot standby of the database's server, for trying read replicas out (--help).
import { lib } from './ts.mjs'

const { parseCommandLine, wholeNumber } = await lib('args.ts')
const { values } = parseCommandLine(import.meta.url, {
  usage: ['[--port <port>] [--primary-url <url>]'],
  summary:
    "Makes a hot standby of the server (the embedded one, or DATABASE_URL's) in a new folder under the\n" +
    "temp folder, started on 127.0.0.1:<port>: pg_basebackup -R (of the server's major version: PG_BIN or\n" +
    '/usr/lib/postgresql/<major>/bin), or for the embedded server a low-level base backup with its own\n' +
    'programs. Prints the DATABASE_REPLICA_URLS value to start the API with, and how to stop and remove it.\n' +
    'The embedded server must keep running (npm start, or scripts/db.mjs) for the standby to follow it.',
  options: {
    port: { type: 'string', arg: '<port>', help: "the standby's port on 127.0.0.1 (default 54339)", parse: wholeNumber(1, 65535) },
    'primary-url': {
      type: 'string',
      arg: '<url>',
      help: 'the primary as a user that may replicate (superuser or REPLICATION; default DATABASE_URL)',
    },
  },
  environment: [['PG_BIN', "folder of pg_basebackup and pg_ctl of the server's major version (default /usr/lib/postgresql/<major>/bin)"]],
  examples: ['npx zx scripts/replica.mjs', 'DATABASE_REPLICA_URLS=postgres://127.0.0.1:54339/hirebase npm start'],
})

const { run } = await lib('cli.ts')
const { replicaCommand } = await lib('standby.ts')

await run(async ({ url, origin }) => {
  const embedded = origin !== 'external' && values['primary-url'] === undefined
  const port = /** @type {number | undefined} */ (values.port) ?? 54339
  const standby = await replicaCommand(values['primary-url'] ?? url, embedded, port)
  console.log(
    `A hot standby runs in ${standby.dir} on 127.0.0.1:${port}. Start the API with:\n` +
      `  DATABASE_REPLICA_URLS=${standby.url} npm start\n` +
      `Stop and remove it with:\n  ${standby.stop}`,
  )
})
