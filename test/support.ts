// Each test file gets its own database, cloned from the template that scripts/test.mjs
// migrated once, so files run in parallel and leave nothing behind.
import { randomBytes } from 'node:crypto'
import { after } from 'node:test'
import { cloneDatabase, connect, type Sql } from '../src/database.ts'
import { applyDefinitions } from '../src/migrate.ts'
import { apiRoles, type ApiRoles } from '../src/roles.ts'

const serverUrl = process.env.TEST_SERVER_URL
const template = process.env.TEST_TEMPLATE
if (!serverUrl || !template) throw new Error('run the tests with `npm test`: it prepares the database they need')

export interface TestDatabase { url: string; name: string; sql: Sql; roles: ApiRoles }

/** A fresh, migrated database, dropped when the test file ends, with its own API roles (made
 *  by re-applying the definitions: a clone's roles are named after it) dropped after it. */
export async function freshDatabase(): Promise<TestDatabase> {
  // Named after the run, which removes it even if this process is killed.
  const name = `hirebase_test_${process.env.TEST_RUN ?? '00000000'}_${randomBytes(5).toString('hex')}`
  const url = await cloneDatabase(serverUrl!, template!, name)
  const sql = connect(url, { max: 4 })
  after(async () => {
    await sql.end({ timeout: 5 })
    await dropDatabase(name)
  })
  await applyDefinitions(sql)
  return { url, name, sql, roles: await apiRoles(sql) }
}

/** Drops a test database and the roles named after it. */
export async function dropDatabase(name: string): Promise<void> {
  const admin = connect(serverUrl!, { max: 1 })
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    // The same names as internal.api_role() and internal.api_login_role() (test names are short).
    await admin.unsafe(`drop role if exists hirebase_login_${name}, hirebase_api_${name}`)
  } finally {
    await admin.end()
  }
}

/** Connects to the test server's database `name` (e.g. one a test made itself). */
export const serverUrlFor = (name: string) => Object.assign(new URL(serverUrl!), { pathname: `/${name}` }).toString()

/** The test server's URL as npm test was given it (a user that may create databases and roles). */
export const adminUrl = () => serverUrl!

/** A login role made for a test, with a password, dropped (with what it owns) when the file ends. */
export async function testLoginRole(prefix: string): Promise<{ name: string; urlFor: (database: string) => string }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  const admin = connect(serverUrl!, { max: 1 })
  try {
    await admin.unsafe(`create role ${name} login password '${password}'`)
  } finally {
    await admin.end()
  }
  after(async () => {
    const admin = connect(serverUrl!, { max: 1 })
    try {
      await admin.unsafe(`drop role if exists ${name}`)
    } finally {
      await admin.end()
    }
  })
  const urlFor = (database: string) => {
    const url = new URL(serverUrl!)
    url.username = name
    url.password = password
    url.pathname = `/${database}`
    return url.toString()
  }
  return { name, urlFor }
}
