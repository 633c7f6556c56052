// Each test file gets its own database, cloned from the template that scripts/test.mjs
// migrated once, so files run in parallel and leave nothing behind.
import { randomBytes } from 'node:crypto'
import { after } from 'node:test'
import { connect, type Sql } from '../src/database.ts'

const serverUrl = process.env.TEST_SERVER_URL
const template = process.env.TEST_TEMPLATE
if (!serverUrl || !template) throw new Error('run the tests with `npm test`: it prepares the database they need')

export function databaseUrl(name: string): string {
  const url = new URL(serverUrl!)
  url.pathname = `/${name}`
  return url.toString()
}

export interface TestDatabase { url: string; name: string; sql: Sql }

/** A fresh, migrated database, dropped when the test file ends. */
export async function freshDatabase(): Promise<TestDatabase> {
  const name = `hirebase_test_${randomBytes(5).toString('hex')}`
  const admin = connect(serverUrl!, { max: 1 })
  try {
    await admin.unsafe(`create database ${name} template ${template}`)
    // Per-database settings (the search_path) are not copied with the template.
    const settings = await admin<{ setting: string }[]>`
      select unnest(s.setconfig) as setting
        from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase
       where d.datname = ${template!} and s.setrole = 0`
    for (const { setting } of settings) {
      const [key, value] = [setting.slice(0, setting.indexOf('=')), setting.slice(setting.indexOf('=') + 1)]
      await admin.unsafe(`alter database ${name} set ${key} = ${value}`)
    }
  } finally {
    await admin.end()
  }
  const sql = connect(databaseUrl(name), { max: 4 })
  after(async () => {
    await sql.end({ timeout: 5 })
    const admin = connect(serverUrl!, { max: 1 })
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end()
  })
  return { url: databaseUrl(name), name, sql }
}
