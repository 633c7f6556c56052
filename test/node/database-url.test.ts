// Any valid libpq DATABASE_URL works everywhere: several hosts (h1:5432,h2:5433), a socket
// folder (?host=/path), percent-encoded credentials. new URL() refuses the first.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { describeDatabase, withDatabase } from '../../src/database.ts'
import { projectRoot } from '../../src/paths.ts'
import { freshDatabase } from '../support.ts'

test('several hosts and socket folders: described without credentials, database swapped in place', () => {
  const multi = 'postgres://u:p%40ss@db1.example:5432,db2.example:5433/hire?sslmode=require&target_session_attrs=read-write'
  assert.equal(describeDatabase(multi), 'db1.example:5432,db2.example:5433/hire')
  assert.equal(
    withDatabase(multi, 'other'),
    'postgres://u:p%40ss@db1.example:5432,db2.example:5433/other?sslmode=require&target_session_attrs=read-write',
  )
  const socket = 'postgres://postgres:secret@localhost/hirebase?host=%2Fsrv%2Fpg%2Frun&port=54329'
  assert.equal(describeDatabase(socket), '/srv/pg/run (socket, port 54329)/hirebase')
  assert.equal(withDatabase(socket, 'x'), 'postgres://postgres:secret@localhost/x?host=%2Fsrv%2Fpg%2Frun&port=54329')
  assert.equal(describeDatabase('postgresql://h/db'), 'h:5432/db')
  for (const url of [multi, socket]) assert.ok(!describeDatabase(url).includes('secret') && !describeDatabase(url).includes('p%40ss'))
})

test('report.mjs with a multi-host DATABASE_URL (the test server listed twice) writes its reports', { timeout: 60_000 }, async (t) => {
  const db = await freshDatabase()
  if (/[?&]host=(\/|%2F)/i.test(db.url)) {
    console.warn(
      'SKIPPED: the test server is reached over a socket (embedded default), so there is no host list to repeat; the DATABASE_URL run covers it',
    )
    return t.skip('socket URL: no host list')
  }
  const multi = db.url.replace(/@([^/?]+)/, (_, host) => `@${host},${host}`)
  assert.notEqual(multi, db.url)
  const out = await mkdtemp(join(tmpdir(), 'hirebase-multihost-'))
  const { stdout } = await promisify(execFile)(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/report.mjs', '--out', out], {
    cwd: projectRoot,
    env: { ...process.env, DATABASE_URL: multi },
  })
  assert.match(stdout, /reports written to .*index\.html\n  no year has hires yet/)
  const host = /@([^/?]+)/.exec(db.url)![1]
  assert.match(
    await readFile(join(out, 'index.html'), 'utf8'),
    new RegExp(`${host.replace(/[.]/g, '\\.')},${host.replace(/[.]/g, '\\.')}/${db.name}`),
  )
})
