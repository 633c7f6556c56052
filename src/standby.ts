// Local PostgreSQL clusters for trying read replicas out (scripts/replica.mjs) and for testing them
// (test/node/replicas.test.ts): initdb, pg_basebackup -R, pg_ctl, on loopback, run as the
// `postgres` OS user when we are root (initdb and postgres refuse root).
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chown, mkdtemp } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { promisify } from 'node:util'

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
  if (serverUser()) {
    const id = async (flag: string) => Number((await run('id', [flag, 'postgres'], { encoding: 'utf8' })).stdout.trim())
    await chown(dir, await id('-u'), await id('-g'))
  }
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

export interface Cluster { dir: string; port: number; bin: string }

/** Starts a cluster on 127.0.0.1:port, its socket in its parent folder. */
export async function startCluster(c: Cluster): Promise<void> {
  await pg(c.bin, 'pg_ctl', ['-D', c.dir, '-l', `${c.dir}.log`, '-o', `-p ${c.port} -c listen_addresses=127.0.0.1 -k ${join(c.dir, '..')}`, '-w', '-t', '60', 'start'])
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
