// Two hirebase databases on one cluster, each with an owner of its own (no CREATEROLE: an
// administrator made their roles, as the migration's hint says): neither owner, nor either
// API role, nor the old cluster-wide hirebase_api, reaches the other database.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, test } from 'node:test'
import { connect } from '../../src/database.ts'
import { migrate } from '../../src/migrate.ts'
import { apiConnection } from '../../src/roles.ts'
import { adminUrl } from '../support.ts'

const tag = randomBytes(4).toString('hex')
const admin = connect(adminUrl(), { max: 1, onnotice: () => {} })
const urlOf = (user: string, password: string, database: string) =>
  Object.assign(new URL(adminUrl()), { username: user, password, pathname: `/${database}` }).toString()

interface Side { owner: string; password: string; database: string; api: string; login: string; url: string }
const sides: Side[] = []
for (const name of ['a', 'b']) {
  const owner = `hb_owner_${name}_${tag}`
  const database = `hirebase_test_${tag}_${name}`
  const password = randomBytes(12).toString('hex')
  const side = { owner, password, database, api: `hirebase_api_${database}`, login: `hirebase_login_${database}`, url: urlOf(owner, password, database) }
  sides.push(side)
  await admin.unsafe(`create role ${owner} login createdb password '${password}'`)
  await admin.unsafe(`grant hirebase_api to ${owner}`) // the old cluster-wide role, which migration 0002 wants
  if (name === 'b') {
    // What an administrator runs once for an owner without CREATEROLE (a's test reads it from the error).
    await admin.unsafe(`create role ${side.api} nologin`)
    await admin.unsafe(`create role ${side.login} login`)
    await admin.unsafe(`grant ${side.api} to ${side.login}`)
    await admin.unsafe(`grant ${side.api} to ${owner}`)
    await admin.unsafe(`grant ${side.login} to ${owner}`)
  }
}

after(async () => {
  try {
    await cleanUp()
  } finally {
    await admin.end()
  }
})

async function cleanUp() {
  for (const side of sides) {
    const own = connect(urlOf(side.owner, side.password, 'postgres'), { max: 1 })
    try {
      // A session just ended may still be leaving (the owner may not end another's): retry.
      for (let attempt = 1; ; attempt++) {
        const failed = await own.unsafe(`drop database if exists ${side.database} with (force)`).then(() => null, (err: Error) => err)
        if (!failed) break
        if (attempt === 20) throw failed
        await new Promise((r) => setTimeout(r, 250))
      }
    } finally {
      await own.end()
    }
    await admin.unsafe(`drop role if exists ${side.login}, ${side.api}, ${side.owner}`)
  }
}

test('two databases, two owners: neither owner nor API role reaches the other', { timeout: 180_000 }, async () => {
  for (const side of sides) {
    const own = connect(urlOf(side.owner, side.password, 'postgres'), { max: 1 })
    await own.unsafe(`create database ${side.database}`).finally(() => own.end())
    if (side === sides[0]) {
      // An owner without CREATEROLE is told what an administrator must run, and it is enough.
      const refused = await migrate(side.url).then(() => null, (err: Error) => err.message)
      const statements = /have an administrator run: (.*);$/.exec(refused ?? '')?.[1]
      assert.ok(statements, String(refused))
      for (const statement of statements.split('; ')) await admin.unsafe(statement)
    }
    await migrate(side.url)
  }
  const [a, b] = sides
  for (const [me, other] of [[a, b], [b, a]]) {
    // The owner cannot even connect to the other database ...
    const cross = connect(urlOf(me.owner, me.password, other.database), { max: 1 })
    await assert.rejects(cross`select 1`, { code: '42501' }, `${me.owner} connected to ${other.database}`)
    await cross.end()
    // ... nor take the other's API role in its own, which holds nothing there anyway.
    const own = connect(me.url, { max: 1 })
    try {
      await assert.rejects(own.unsafe(`set role ${other.api}`), { code: '42501' })
      // An owner without CREATEROLE cannot set the login role's password: SET ROLE, loudly ...
      const fallback = await apiConnection(me.url)
      assert.equal(fallback.role, me.api)
      assert.match(fallback.warning ?? '', /RESET ROLE undoes/)
      // ... unless the administrator gives the API its URL (API_DATABASE_URL).
      const password = randomBytes(12).toString('hex')
      await admin.unsafe(`alter role ${me.login} password '${password}'`)
      const api = await apiConnection(me.url, { apiUrl: urlOf(me.login, password, me.database) })
      assert.equal(api.role, undefined, 'the API logs in as its own login role')
      await assert.rejects(apiConnection(me.url, { apiUrl: me.url }), /is \(or acts as\) the owner/)
      const login = connect(api.url.replace(`/${me.database}`, `/${other.database}`), { max: 1 })
      await assert.rejects(login`select 1`, { code: '42501' }, `${me.login} connected to ${other.database}`)
      await login.end()
    } finally {
      await own.end()
    }
    // Seen from inside the other database, by its owner.
    const inside = connect(other.url, { max: 1 })
    try {
      const [p] = await inside`
        select has_database_privilege(${me.owner}, current_database(), 'connect') as owner_connect,
               has_database_privilege(${me.api}, current_database(), 'connect') as api_connect,
               has_database_privilege('hirebase_api', current_database(), 'connect') as legacy_connect,
               has_table_privilege('hirebase_api', 'data.employees', 'select') as legacy_reads,
               has_function_privilege('hirebase_api', 'api.ingest_batch(text, jsonb, text, bigint, integer, integer, integer, integer)', 'execute') as legacy_ingests,
               has_schema_privilege(${me.api}, 'api', 'usage') as api_usage`
      assert.deepEqual({ ...p }, { owner_connect: false, api_connect: false, legacy_connect: false, legacy_reads: false, legacy_ingests: false, api_usage: false })
    } finally {
      await inside.end()
    }
  }
})
