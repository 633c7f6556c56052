// A hostile member of the API role: a login role granted only this database's API role
// tries to become the owner through every routine it may execute (enumerated from pg_proc, so
// a new routine is covered without touching this file), with the pg_temp trigger trick and
// with hostile arguments, and by SET ROLE. None of it may work.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { connect } from '../../src/database.ts'
import { freshDatabase, testLoginRole } from '../support.ts'

const db = await freshDatabase()
const hostileRole = await testLoginRole('hostile')
await db.sql.unsafe(`grant ${db.roles.api} to ${hostileRole.name}`)
// More than the API role has: the routines themselves must hold, not only the missing TEMP.
await db.sql.unsafe(`grant temporary on database ${db.name} to ${hostileRole.name}`)
const hostile = connect(hostileRole.urlFor(db.name), { max: 1, onnotice: () => {} })
const owner = db.roles.owner

interface Routine { signature: string; schema: string; name: string; kind: string; types: string[]; names: string[] }

/** Every routine outside the system schemas that the hostile role may execute and reach. */
const routines = async (): Promise<Routine[]> => (await hostile<Routine[]>`
  select p.oid::regprocedure::text as signature, n.nspname as schema, p.proname as name, p.prokind as kind,
         coalesce((select array_agg(format_type(t, null) order by i) from unnest(p.proargtypes) with ordinality a(t, i)), '{}') as types,
         coalesce(p.proargnames, '{}') as names
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'
     and has_schema_privilege(n.oid, 'usage') and has_function_privilege(p.oid, 'execute')
   order by 1`).map((r) => ({ ...r }))

/** Plausible and hostile values per argument type; call k takes value k of each list. */
const VALUES: Record<string, unknown[]> = {
  text: ['jobs', `jobs'); grant ${'x'} to public; --`, '../../etc/passwd', 'employees" cascade; drop table data.jobs; --'],
  jsonb: [[{ job_id: 990001, job_name: 'Hostile' }], { not: 'an array' }, [1, 2, 3], 'x'],
  integer: [1, -1, 2147483647, 0],
  bigint: [1, -1, '9223372036854775807', 0],
  boolean: [false, true, false, true],
  interval: ['1 day', '-100 years', '1 second', '1000 years'],
  'text[]': [['jobs'], ['../x', 'jobs'], ['departments', 'jobs', 'employees'], []],
}

/** Call 0 is a valid call (the attack in the issue was one: a failing call rolls its trap back). */
const VALID: Record<string, unknown> = { p_source: 'api', p_format: 'json', p_parse_error: null, p_idempotency_key: null, p_requested_by: 'sql', p_body: '[{"job_id": 990001, "job_name": "Hostile"}]' }

const ownerMember = async () => (await db.sql`
  select pg_has_role(${hostileRole.name}, ${owner}, 'member') as owner,
         exists (select from pg_auth_members m join pg_roles r on r.oid = m.member where r.rolname = ${hostileRole.name}
                  and m.roleid <> (select oid from pg_roles where rolname = ${db.roles.api})) as other`)[0]

describe('a hostile member of the API role', () => {
  test('can execute the API routines, and none of the runner\'s, housekeeping or the loader\'s staging', async () => {
    const names = (await routines()).map((r) => `${r.schema}.${r.name}`)
    for (const expected of ['api.ingest_batch', 'api.ingest_request', 'api.get_row', 'api.request_backup']) assert.ok(names.includes(expected), expected)
    const forbidden = names.filter((n) => n.startsWith('runner.') || n.startsWith('internal.') ||
      ['api.housekeeping', 'api.ingest_staged', 'api.open_ingest_input'].includes(n))
    assert.deepEqual(forbidden, [])
  })

  test('the pg_temp trigger trick and hostile arguments against every routine it may execute gain nothing', { timeout: 120_000 }, async () => {
    // Every pg_temp name any routine of ours mentions, made first by the caller, with triggers
    // that would make the caller a member of the owner if they ever ran as the owner.
    const [{ names }] = await db.sql<{ names: string[] }[]>`
      select coalesce(array_agg(distinct m[1]), '{}') as names
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace,
             regexp_matches(p.prosrc, '(?:pg_temp\.|create temp table )([a-z_]+)', 'g') m
       where n.nspname in ('api', 'internal', 'runner', 'report')`
    assert.ok(names.includes('ingest_input'), names.join(', '))
    await hostile.unsafe(`create table pg_temp.fired (who text)`)
    await hostile.unsafe(`grant all on pg_temp.fired to public`)
    await hostile.unsafe(`create function pg_temp.become_owner() returns trigger language plpgsql as $$
      begin
        insert into pg_temp.fired values (current_user);
        execute format('grant %I to %I', ${`'${owner}'`}, ${`'${hostileRole.name}'`});
        return null;
      end $$`)
    for (const name of names) {
      await hostile.unsafe(name === 'ingest_input'
        ? `create table pg_temp.ingest_input (position bigint, payload jsonb, fields text[], unreadable text)`
        : `create table pg_temp.${name} (position bigint, payload jsonb)`)
      await hostile.unsafe(`grant all on pg_temp.${name} to public`)
      for (const event of ['insert', 'update', 'delete', 'truncate']) {
        await hostile.unsafe(`create trigger trap_${event} before ${event} on pg_temp.${name} for each statement execute function pg_temp.become_owner()`)
      }
    }

    const list = await routines()
    assert.ok(list.length >= 10, `only ${list.length} routines`)
    const outcomes: string[] = []
    for (const r of list) {
      for (let k = 0; k < 4; k++) {
        const args = r.types.map((t, i) => k === 0 && r.names[i] in VALID ? VALID[r.names[i]] : (VALUES[t] ?? [null])[k % (VALUES[t] ?? [null]).length])
        const placeholders = r.types.map((t, i) => `$${i + 1}::${t}`).join(', ')
        const statement = `${r.kind === 'p' ? 'call' : 'select'} ${r.schema}.${r.name}(${placeholders})`
        try {
          await hostile.begin((tx) => tx.unsafe(statement, args as never[]))
          outcomes.push(`${r.schema}.${r.signature} #${k}: ok`)
        } catch (err) {
          outcomes.push(`${r.schema}.${r.signature} #${k}: ${(err as { code?: string }).code}`)
        }
        assert.deepEqual(await ownerMember(), { owner: false, other: false }, `after ${r.signature} #${k}`)
      }
    }
    assert.equal(Number((await hostile`select count(*) from pg_temp.fired`)[0].count), 0, 'a trap ran')
    // The traps were in the way of the ingest routines, which refused (42501) rather than use them.
    for (const name of ['api.ingest_batch', 'api.ingest_request']) {
      assert.ok(outcomes.some((o) => o.startsWith(name) && o.endsWith('#0: 42501')), outcomes.join('\n'))
    }
    // Nothing the hostile arguments named was touched.
    assert.equal(Number((await db.sql`select count(*) from data.jobs where job_id = 990001`)[0].count), 0)
    assert.ok((await db.sql`select to_regclass('data.jobs') as t`)[0].t)
  })

  test('without the traps, the same role ingests through the API routines as documented', async () => {
    for (const { name } of await hostile<{ name: string }[]>`select relname as name from pg_class where relnamespace = pg_my_temp_schema() and relkind = 'r'`) {
      await hostile.unsafe(`drop table pg_temp.${name}`)
    }
    const [r] = await hostile`call api.ingest_batch('jobs', '[{"job_id": 990002, "job_name": "Documented"}]')`
    assert.equal(r.inserted, 1)
  })

  test('SET ROLE to the owner, to other roles, and direct writes are refused', async () => {
    await assert.rejects(hostile.unsafe(`set role ${owner}`), { code: '42501' })
    await assert.rejects(hostile.unsafe(`set role hirebase_api`).then(() => hostile`select * from data.jobs`), { code: '42501' })
    await hostile.unsafe('reset role')
    for (const statement of [
      `insert into data.jobs values (990003, 'direct')`, `delete from data.ingest_batches`, `select runner.lock_table('jobs')`,
      `select * from runner.claim_backup_request('x')`, `select runner.finish_backup_request(1, '../../etc/passwd', 1, 1, 'x', null)`,
      `select runner.restore_apply(array['employees'], false)`, `select api.housekeeping('1 day', '1 day')`,
      `select internal.ingest_statement('jobs', false)`, `create table data.sneaky (id int)`, `alter role current_user createrole`,
    ]) {
      await assert.rejects(hostile.unsafe(statement), (err: { code?: string }) => ['42501', '3F000', '42P01', '42883'].includes(err.code ?? ''), statement)
    }
    assert.deepEqual(await ownerMember(), { owner: false, other: false })
  })

  test('queuing backups over and over keeps one waiting request per table (the disk is not filled by a loop)', async () => {
    const waiting = async () => (await db.sql<{ table_name: string; n: number }[]>`
      select table_name, count(*)::int as n from data.backup_requests where finished_at is null group by 1 order by 1`).map((r) => [r.table_name, r.n])
    const [{ ids: first }] = await hostile<{ ids: string[] }[]>`select api.request_backup(null, 'sql') as ids`
    for (let i = 0; i < 20; i++) {
      const [{ ids }] = await hostile<{ ids: string[] }[]>`select api.request_backup(${i % 2 ? 'jobs' : null}, 'api') as ids`
      assert.deepEqual(ids, i % 2 ? [first[1]] : first, 'a repeat returns the waiting request')
    }
    assert.deepEqual(await waiting(), [['departments', 1], ['employees', 1], ['jobs', 1]])
    // A request while the runner performs the waiting one (its claim holds the row) is another
    // one, once: the backup running may have started before the caller's last change.
    const runner = connect(db.url, { max: 1 })
    try {
      await runner.begin(async (tx) => {
        const [claimed] = await tx`select * from runner.claim_backup_request('test')`
        assert.ok(first.includes(claimed.request_id))
        const [{ ids: again }] = await hostile<{ ids: string[] }[]>`select api.request_backup(${claimed.table_name}) as ids`
        assert.notDeepEqual(again, [claimed.request_id])
        assert.deepEqual((await hostile`select api.request_backup(${claimed.table_name}) as ids`)[0].ids, again)
        await tx`select runner.finish_backup_request(${claimed.request_id}, null, null, null, null, 'test')`
      })
    } finally {
      await runner.end()
    }
    assert.deepEqual(await waiting(), [['departments', 1], ['employees', 1], ['jobs', 1]])
  })

  test('a caller that stays in its transaction does not keep the runners from the waiting request', async () => {
    // s6x: request_backup's look-up of the waiting request kept its row lock in the caller's
    // transaction; BEGIN; SELECT api.request_backup('jobs'); and no COMMIT made every runner's
    // claim (SKIP LOCKED) pass it, and every later request return it: no backup of jobs at all.
    await db.sql`update data.backup_requests set finished_at = now(), error = 'test' where finished_at is null`
    const [{ ids: [waiting] }] = await db.sql<{ ids: string[] }[]>`select api.request_backup('jobs') as ids`
    const staying = connect(hostileRole.urlFor(db.name), { max: 1, onnotice: () => {} })
    const inside = await staying.reserve()
    try {
      await inside`begin`
      assert.deepEqual((await inside`select api.request_backup('jobs') as ids`)[0].ids, [waiting])
      const [claimed] = await db.sql.begin((tx) => tx`select * from runner.claim_backup_request('test')`)
      assert.equal(claimed?.request_id, waiting, 'the runner takes the waiting request')
    } finally {
      await inside`rollback`
      inside.release()
      await staying.end()
    }
  })

  test('a refused request logs a bounded error message, whatever the caller says it was', async () => {
    // p_parse_error is the server's CSV parser's message; in psql it is whatever the caller passes.
    const said = 'x'.repeat(4_000_000)
    const [{ r }] = await hostile`select api.ingest_request('jobs', '', 'csv', false, 'key-of-a-huge-refusal', ${said}) as r`
    assert.equal(r.error.code, 'malformed_csv')
    const [{ stored, kept }] = await db.sql`
      select (select octet_length(error_message) from data.ingest_batches where batch_id = ${r.batch_id}) as stored,
             (select octet_length(response::text) from data.idempotency_keys where idempotency_key = 'key-of-a-huge-refusal') as kept`
    assert.ok(stored <= 2000 && kept <= 4000, `stored ${stored} bytes of error message, ${kept} of response`)
  })

  test('ends the session', async () => { await hostile.end() })
})
