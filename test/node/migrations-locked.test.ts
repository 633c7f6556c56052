// Locked migrations: sql/migrations.sum lists every migration file by SHA-256 (CI checks it),
// the migrator records each applied migration's files and refuses a database whose applied
// migrations differ from them, and migration 0006 brings a database migrated with 0003 as first
// committed (edited afterwards) to the current schema.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { appendFile, cp, mkdtemp, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { connect, withDatabase } from '../../src/database.ts'
import { migrate, migrationChecksums } from '../../src/migrate.ts'
import { projectRoot } from '../../src/paths.ts'
import { adminUrl, dropDatabase, freshDatabase } from '../support.ts'

const MIGRATIONS = join(projectRoot, 'sql/migrations')

/** An empty database named after the run (npm test removes it even if this process dies). */
async function emptyDatabase(): Promise<{ name: string; url: string }> {
  const name = `hirebase_test_${process.env.TEST_RUN ?? '00000000'}_${randomBytes(5).toString('hex')}`
  const admin = connect(adminUrl(), { max: 1 })
  try {
    await admin.unsafe(`create database ${name}`)
  } finally {
    await admin.end()
  }
  after(() => dropDatabase(name))
  return { name, url: withDatabase(adminUrl(), name) }
}

test('sql/migrations.sum lists exactly the files of sql/migrations/, with their SHA-256', async () => {
  const listed = (await readFile(join(projectRoot, 'sql/migrations.sum'), 'utf8'))
    .trimEnd()
    .split('\n')
    .map((line) => {
      const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line)
      assert.ok(m, `not a sha256sum line: ${line}`)
      return [m[2], m[1]]
    })
  const files = [...(await migrationChecksums(MIGRATIONS))]
  assert.ok(files.length >= 12)
  assert.deepEqual(
    listed,
    files,
    'a migration file was added or changed without updating sql/migrations.sum (cd sql/migrations && sha256sum * > ../migrations.sum), or an applied migration was edited: never edit one, add a new migration',
  )
  assert.deepEqual(
    await readdir(MIGRATIONS).then((n) => n.sort()),
    files.map(([name]) => name),
  )
})

test('a database is refused when a migration applied to it was edited since, naming the file', { timeout: 120_000 }, async () => {
  const db = await freshDatabase()
  // The checkout's sql/ folder, with one applied migration edited.
  const root = await mkdtemp(join(tmpdir(), 'hirebase-edited-'))
  await cp(join(projectRoot, 'sql'), join(root, 'sql'), { recursive: true })
  await appendFile(join(root, 'sql/migrations/0003-reports.sql'), '\nalter table data.hire_counts add column note text;\n')
  await assert.rejects(migrate(db.url, { root }), (err: Error) => {
    assert.match(err.message, /refusing to migrate .*sql\/migrations\/0003-reports\.sql was edited after 0003-reports\.mjs was applied/)
    assert.match(err.message, /new migration/)
    return true
  })
  // Nothing was applied, and the checkout's own files still pass.
  assert.equal(
    (await db.sql`select count(*)::int as n from pg_attribute where attrelid = 'data.hire_counts'::regclass and attname = 'note'`)[0].n,
    0,
  )
  await migrate(db.url)
  // A migration file that disappeared is named too.
  await db.sql`update public.migrations set checksums = checksums || '{"0004-schedule.extra.sql": "00"}' where name = '0004-schedule.mjs'`
  await assert.rejects(migrate(db.url), /sql\/migrations\/0004-schedule\.extra\.sql was removed after 0004-schedule\.mjs was applied/)
})

test('a database migrated before checksums existed gets them recorded on its first run, then is locked', { timeout: 120_000 }, async () => {
  const db = await freshDatabase()
  await db.sql`alter table public.migrations drop column checksums`
  await migrate(db.url)
  const sums = await migrationChecksums(MIGRATIONS)
  const rows = await db.sql<
    { name: string; checksums: Record<string, string> }[]
  >`select name, checksums from public.migrations order by id`
  assert.ok(rows.length >= 6)
  for (const r of rows) {
    const stem = r.name.replace(/\.mjs$/, '')
    assert.deepEqual(r.checksums, { [`${stem}.mjs`]: sums.get(`${stem}.mjs`), [`${stem}.sql`]: sums.get(`${stem}.sql`) })
  }
})

test(
  '0006 brings a database migrated with the first 0003 (one row per quarter) to the current schema, counts kept',
  { timeout: 180_000 },
  async () => {
    const db = await emptyDatabase()
    const sql = connect(db.url, { max: 1 })
    try {
      // What ley and the runner of that time did: 0001..0005, 0003 as first committed, names only.
      const old = [
        '0001-core.sql',
        '0002-api.sql',
        '../../test/fixtures/0003-reports.first.sql',
        '0004-schedule.sql',
        '0005-exact-data.sql',
      ]
      await sql.begin(async (tx) => {
        await tx`set local search_path = public`
        for (const file of old) await tx.unsafe(await readFile(join(MIGRATIONS, file), 'utf8'))
        await tx`create table public.migrations (id serial primary key, name varchar(255) not null, created_at timestamp not null)`
        for (const name of ['0001-core.mjs', '0002-api.mjs', '0003-reports.mjs', '0004-schedule.mjs', '0005-exact-data.mjs']) {
          await tx`insert into public.migrations (name, created_at) values (${name}, now())`
        }
        await tx`insert into data.departments values (1, 'Sales'), (2, 'Support')`
        await tx`insert into data.jobs values (1, 'Clerk')`
        await tx`insert into data.employees values
        (1, 'A', '2021-01-01T00:30:00+01:00', 1, 1), (2, 'B', '2021-03-31T23:59:59Z', 1, 1), (3, 'C', '2021-04-01T00:00:00Z', 1, 1),
        (4, 'D', '2021-12-31T23:00:00-02:00', 2, 1)`
      })
      assert.deepEqual(
        (await sql`select quarter, hires from data.hires_by_quarter where department_id = 1 order by year, quarter`).map((r) => [
          r.quarter,
          r.hires,
        ]),
        [
          [4, 1],
          [1, 1],
          [2, 1],
        ],
      )

      const { migrations } = await migrate(db.url)
      // 0006 and every later migration (0007-reject-dedupe, ...) are pending.
      assert.deepEqual(migrations, (await readdir(MIGRATIONS)).filter((f) => f.endsWith('.mjs') && f > '0005-exact-data.mjs').sort())
      assert.equal(migrations[0], '0006-hire-counts.mjs')
      assert.equal((await sql`select to_regclass('data.hires_by_quarter') as t`)[0].t, null)
      assert.deepEqual(
        [...(await sql`select year, department_id, job_id, q1, q2, q3, q4 from data.hire_counts order by 1, 2, 3`)],
        [
          { year: 2020, department_id: 1, job_id: 1, q1: 0, q2: 0, q3: 0, q4: 1 },
          { year: 2021, department_id: 1, job_id: 1, q1: 1, q2: 1, q3: 0, q4: 0 },
          { year: 2022, department_id: 2, job_id: 1, q1: 1, q2: 0, q3: 0, q4: 0 },
        ],
      )
      assert.deepEqual(
        [...(await sql`select year, department_id, hires from data.hires_by_department order by 1, 2`)],
        [
          { year: 2020, department_id: 1, hires: 1 },
          { year: 2021, department_id: 1, hires: 2 },
          { year: 2022, department_id: 2, hires: 1 },
        ],
      )
      // The counts stay exact through the current triggers, and agree with a recount.
      await sql`insert into data.employees values (5, 'E', '2021-05-05T00:00:00Z', 1, 1)`
      await sql`delete from data.employees where employee_id = 4`
      assert.equal((await sql`select api.refresh_reports() as fixed`)[0].fixed, 0)
      assert.deepEqual(
        [...(await sql`select department, job, q1, q2, q3, q4 from report.hires_by_quarter(2021)`)],
        [{ department: 'Sales', job: 'Clerk', q1: 1, q2: 2, q3: 0, q4: 0 }],
      )
    } finally {
      await sql.end()
    }
    // On the database's search path (a new session), the name is the report's, no longer a table of ids.
    const fresh = connect(db.url, { max: 1 })
    try {
      assert.equal((await fresh`select to_regclass('hires_by_quarter') as t`)[0].t, null)
      assert.deepEqual([...(await fresh`select department from hires_by_quarter(2021)`)], [{ department: 'Sales' }])
    } finally {
      await fresh.end()
    }
  },
)
