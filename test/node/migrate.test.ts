// scripts/migrate.mjs: concurrent runs wait for each other, a run that cannot finish applies
// nothing (preflight), and a foreign public.migrations table is named in the error.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { connect, dropDatabasesAndRoles, withDatabase } from '../../src/database.ts'
import { projectRoot } from '../../src/paths.ts'

const serverUrl = process.env.TEST_SERVER_URL!
const admin = connect(serverUrl, { max: 1 })
const made: string[] = []
const roles: string[] = []
after(async () => {
  try {
    await dropDatabasesAndRoles(admin, made)
    for (const role of roles) await admin.unsafe(`drop role if exists ${role}`)
  } finally {
    // Even when a drop fails: an open connection would keep this file from ever ending.
    await admin.end()
  }
})

/** An empty database (not cloned from the migrated template). */
async function emptyDatabase(): Promise<{ name: string; url: string }> {
  // Named after the run, so a run killed outright has it removed by the next one.
  const name = `hirebase_test_${process.env.TEST_RUN}_mig_${randomBytes(4).toString('hex')}`
  await admin.unsafe(`create database ${name}`)
  made.push(name)
  return { name, url: withDatabase(serverUrl, name) }
}

const asRole = (url: string, role: string, password: string) => url.replace(/^(postgres(?:ql)?:\/\/)[^@/]*@/, `$1${role}:${password}@`)

function migrateRun(url: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/migrate.mjs'], {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: url },
    })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      out += d
    })
    child.on('exit', (code) => resolve({ code, out }))
  })
}

async function applied(url: string) {
  const sql = connect(url, { max: 1 })
  try {
    const [r] = await sql`select (select count(*)::int from pg_namespace where nspname in ('data', 'api', 'internal', 'report')) as schemas,
      to_regclass('public.migrations') is not null as bookkeeping`
    return r
  } finally {
    await sql.end()
  }
}

test('four concurrent migrate.mjs runs on a new database: all succeed, each migration applied once', { timeout: 180_000 }, async () => {
  const db = await emptyDatabase()
  const runs = await Promise.all([1, 2, 3, 4].map(() => migrateRun(db.url)))
  for (const r of runs) assert.equal(r.code, 0, r.out)
  assert.equal(runs.filter((r) => /migrations applied: 0001/.test(r.out)).length, 1)
  const sql = connect(db.url, { max: 1 })
  try {
    const names = await sql`select name, count(*)::int as n from public.migrations group by name order by name`
    assert.ok(names.length >= 4 && names.every((r) => r.n === 1), JSON.stringify(names))
    const [{ procs }] =
      await sql`select count(*)::int as procs from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'api'`
    assert.ok(procs > 10)
  } finally {
    await sql.end()
  }
})

test('run by a user who does not own the database: refused by the preflight, nothing applied', { timeout: 60_000 }, async () => {
  const db = await emptyDatabase()
  const role = `hb_mig_${randomBytes(4).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  await admin.unsafe(`create role ${role} login password '${password}'`)
  roles.push(role)
  // Everything but ownership: without the preflight, the migrations would commit and the definitions fail.
  await admin.unsafe(`grant create, connect on database ${db.name} to ${role}`)
  const owner = connect(db.url, { max: 1 })
  await owner.unsafe(`grant create on schema public to ${role}`)
  await owner.end()
  await admin.unsafe(`grant hirebase_api to ${role}`).catch(() => {}) // the API role, where it exists
  const r = await migrateRun(asRole(db.url, role, password))
  assert.equal(r.code, 1, r.out)
  assert.match(r.out, new RegExp(`refusing to migrate ${db.name} as ${role}, nothing was applied: the database belongs to \\w+`))
  assert.deepEqual(await applied(db.url), { schemas: 0, bookkeeping: false })
})

test('a foreign public.migrations table is named in the error, and nothing is applied', { timeout: 60_000 }, async () => {
  const db = await emptyDatabase()
  const sql = connect(db.url, { max: 1 })
  await sql`create table public.migrations (version bigint primary key, dirty boolean)`
  await sql.end()
  const r = await migrateRun(db.url)
  assert.equal(r.code, 1, r.out)
  assert.match(r.out, /public\.migrations is not hirebase's list of applied migrations \(its columns are version, dirty/)
  assert.deepEqual(await applied(db.url), { schemas: 0, bookkeeping: true })
})
