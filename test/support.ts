// What the test files share. Each gets its own database, cloned from the template that
// scripts/test.mjs migrated once, so files run in parallel and leave nothing behind; and the
// servers a test starts (the API in-process or as scripts/serve.mjs, a PostgreSQL of its own,
// Chromium), each stopped when the file ends.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { after, type TestContext } from 'node:test'
import type { Browser } from 'playwright-core'
import { cloneDatabase, connect, dropDatabasesAndRoles, importEmbeddedPostgres, type Sql } from '../src/database.ts'
import { applyDefinitions, migrate } from '../src/migrate.ts'
import { projectRoot } from '../src/paths.ts'
import { apiRoles, type ApiRoles } from '../src/roles.ts'
import type { ServerOptions } from '../src/server.ts'

const serverUrl = process.env.TEST_SERVER_URL
const template = process.env.TEST_TEMPLATE
if (!serverUrl || !template) throw new Error('run the tests with `npm test`: it prepares the database they need')

export interface TestDatabase {
  url: string
  name: string
  sql: Sql
  roles: ApiRoles
}

/** A fresh, migrated database, dropped when the test file ends, with its own API roles (made
 *  by re-applying the definitions: a clone's roles are named after it) dropped after it. */
export async function freshDatabase(): Promise<TestDatabase> {
  // Named after the run, which removes it even if this process is killed.
  const name = `hirebase_test_${process.env.TEST_RUN ?? '00000000'}_${randomBytes(5).toString('hex')}`
  const url = await cloneDatabase(serverUrl!, template!, name)
  const sql = connect(url, { max: 4 })
  after(async () => {
    await sql.end({ timeout: 5 })
    await dropDatabase(name)
  })
  await applyDefinitions(sql)
  return { url, name, sql, roles: await apiRoles(sql) }
}

/** Drops a test database and the roles named after it. */
export async function dropDatabase(name: string): Promise<void> {
  const admin = connect(serverUrl!, { max: 1 })
  try {
    await dropDatabasesAndRoles(admin, [name])
  } finally {
    await admin.end()
  }
}

/** Connects to the test server's database `name` (e.g. one a test made itself). */
export const serverUrlFor = (name: string) => Object.assign(new URL(serverUrl!), { pathname: `/${name}` }).toString()

/** The test server's URL as npm test was given it (a user that may create databases and roles). */
export const adminUrl = () => serverUrl!

/** A login role made for a test, with a password, dropped (with what it owns) when the file ends. */
export async function testLoginRole(prefix: string): Promise<{ name: string; urlFor: (database: string) => string }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  const admin = connect(serverUrl!, { max: 1 })
  try {
    await admin.unsafe(`create role ${name} login password '${password}'`)
  } finally {
    await admin.end()
  }
  after(async () => {
    const admin = connect(serverUrl!, { max: 1 })
    try {
      await admin.unsafe(`drop role if exists ${name}`)
    } finally {
      await admin.end()
    }
  })
  const urlFor = (database: string) => {
    const url = new URL(serverUrl!)
    url.username = name
    url.password = password
    url.pathname = `/${database}`
    return url.toString()
  }
  return { name, urlFor }
}

// ---- servers a test starts ----

/** `work` and how long it took. */
export const timed = async <T>(work: Promise<T>) => {
  const started = Date.now()
  const value = await work
  return { value, ms: Date.now() - started }
}

/** A TCP port free on loopback right now. */
export const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

/** The API in this process on a random loopback port (silent, backups in a temp folder unless
 *  given); closed by close(), or when the test (or file) that started it ends. */
export async function listenApi(options: Partial<ServerOptions> & { databaseUrl: string }) {
  // (imported here: most test files never start the API)
  const { buildServer } = await import('../src/server.ts')
  const backupDir = options.backupDir ?? (await mkdtemp(join(tmpdir(), 'hirebase-api-')))
  const { app, sql } = await buildServer({ logLevel: 'silent', ...options, backupDir })
  let closing: Promise<void> | undefined
  const close = () =>
    (closing ??= (async () => {
      await app.close()
      await sql.end({ timeout: 1 })
    })())
  after(close)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  return { app, sql, port, base: `http://127.0.0.1:${port}`, close }
}

/** Holds a table's ingest lock (internal.lock_table, what a restore takes) on a connection of its
 *  own, so requests on that table wait; release() commits and closes it. */
export async function holdTableLock(url: string, table: string) {
  const holder = connect(url, { max: 1 })
  let released = () => {}
  let taken = () => {}
  const locked = new Promise<void>((resolve) => {
    taken = resolve
  })
  const holding = holder.begin(async (tx) => {
    await tx`select internal.lock_table(${table})`
    taken()
    await new Promise<void>((resolve) => {
      released = resolve
    })
  })
  await Promise.race([locked, holding])
  return {
    release: async () => {
      released()
      await holding
      await holder.end()
    },
  }
}

const serveChildren = new Set<ChildProcess>()
after(() => {
  for (const child of serveChildren) child.kill('SIGTERM')
})

/**
 * scripts/serve.mjs in a child process, on `env` over this process's (HOST 127.0.0.1 and a free
 * PORT unless given; PORT=0 lets the server choose, which servers started together need); resolves once it says "API on", fails with its output if it does not within
 * 60 s. stop() sends SIGTERM and resolves to its exit code; it is stopped when the file ends
 * (not the test: a later test may use it).
 */
export async function startServeScript(env: NodeJS.ProcessEnv) {
  const port = Number(env.PORT ?? (await freePort()))
  const child: ChildProcess = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/serve.mjs'], {
    cwd: projectRoot,
    env: { ...process.env, HOST: '127.0.0.1', ...env, PORT: String(port) },
  })
  let output = ''
  child.stdout!.on('data', (d) => {
    output += d
  })
  child.stderr!.on('data', (d) => {
    output += d
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  serveChildren.add(child)
  child.on('exit', () => serveChildren.delete(child))
  for (let i = 0; i < 600 && !output.includes('API on') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100))
  if (!output.includes('API on')) {
    child.kill('SIGKILL')
    throw new Error(
      `scripts/serve.mjs ${child.exitCode === null ? 'did not start within 60 s' : `exited with ${child.exitCode}`}:\n${output}`,
    )
  }
  const stop = () => {
    child.kill('SIGTERM')
    return exited
  }
  // PORT=0: the port it got, from its "API on" line.
  const listening = Number(/API on http:\/\/[^\s]*:(\d+)/.exec(output)?.[1] ?? port)
  return { base: `http://127.0.0.1:${listening}`, port: listening, child, output: () => output, exited, stop }
}

/** A PostgreSQL of the test's own (embedded, on a free loopback port, migrated), for faults that
 *  would disturb the other files' server: stopping it, freezing it. Stopped and removed when the test ends. */
export async function ownPostgres(prefix: string) {
  const dir = await mkdtemp(join(tmpdir(), `hirebase-${prefix}-`))
  await chmod(dir, 0o755) // as root the server runs as `postgres`, which must reach its data
  const port = await freePort()
  const password = randomBytes(8).toString('hex')
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: () => {},
    onError: () => {},
  })
  after(async () => {
    await pg.stop()
    await rm(dir, { recursive: true, force: true })
  })
  await pg.initialise()
  await pg.start()
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`
  // Migrated first: the API logs in as the database's API login role, which migrating makes.
  await migrate(url)
  return { pg, url, dir }
}

/** Debian's chromium through playwright-core (the caller closes it); when it is not installed
 *  the test is skipped, saying so loudly (CI installs it), and this gives undefined. */
export async function chromiumOrSkip(t: TestContext, what: string): Promise<Browser | undefined> {
  const path = (() => {
    try {
      return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim()
    } catch {
      return ''
    }
  })()
  if (!path) {
    console.warn(`SKIPPED: chromium is not installed, so ${what} did not run (apt-get install chromium; CI installs it)`)
    t.skip('chromium is not installed')
    return undefined
  }
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({
    executablePath: path,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  })
  return browser
}
