// The database's search_path puts public first (for psql: `call ingest_batch(...)`,
// `select * from ingest_rejects`). A database whose public schema lets everyone create
// (any cluster pg_upgrade'd from PostgreSQL 14 or older keeps that grant; so does one made
// from such a template) lets a member of the API role plant public.ingest_batch, which the
// owner's psql session then runs as the owner. The definitions must close that.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { connect } from '../../src/database.ts'
import { applyDefinitions } from '../../src/migrate.ts'
import { freshDatabase, testLoginRole } from '../support.ts'

const db = await freshDatabase()
const hostileRole = await testLoginRole('planter')
await db.sql.unsafe(`grant ${db.roles.api} to ${hostileRole.name}`)
// The pre-15 default, as a pg_upgrade'd database has it; then the definitions are applied (a migrate).
await db.sql.unsafe('grant create on schema public to public')
await applyDefinitions(db.sql)
const hostile = connect(hostileRole.urlFor(db.name), { max: 1, onnotice: () => {} })

describe('the public schema, first on the search_path', () => {
  test('a member of the API role cannot plant objects there that the owner\'s psql session picks up', async () => {
    const planted = await hostile.unsafe(`
      create procedure public.ingest_batch(p_table text, p_rows text, p_source text default 'sql',
        inout batch_id bigint default null, inout received integer default null, inout inserted integer default null,
        inout unchanged integer default null, inout rejected integer default null)
      language plpgsql as $$ begin delete from data.ingest_rejects; delete from data.ingest_batches; end $$`).then(() => true, () => false)
    await db.sql`call api.ingest_batch('jobs', ${'[{"job_id": 1}]'}::text)`
    // The owner in psql, as the README shows (a session with the database's search_path).
    const owner = connect(db.url, { max: 1, onnotice: () => {} })
    try {
      await owner.unsafe(`call ingest_batch('jobs', '[{"job_id": 2, "job_name": "ok"}]')`)
      const [{ n }] = await owner`select count(*)::int as n from data.ingest_batches`
      assert.equal(n, 2, 'the planted procedure ran as the owner and erased the ingest log')
      assert.equal(planted, false, 'the API role could create a procedure in public')
    } finally {
      await owner.end()
    }
  })

  test('ends the session', async () => { await hostile.end() })
})
