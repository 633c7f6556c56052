// Each test file gets its own database, cloned from the template that scripts/test.mjs
// migrated once, so files run in parallel and leave nothing behind.
import { randomBytes } from 'node:crypto'
import { after } from 'node:test'
import { cloneDatabase, connect, type Sql } from '../src/database.ts'

const serverUrl = process.env.TEST_SERVER_URL
const template = process.env.TEST_TEMPLATE
if (!serverUrl || !template) throw new Error('run the tests with `npm test`: it prepares the database they need')

export interface TestDatabase { url: string; name: string; sql: Sql }

/** A fresh, migrated database, dropped when the test file ends. */
export async function freshDatabase(): Promise<TestDatabase> {
  // Named after the run, which removes it even if this process is killed.
  const name = `hirebase_test_${process.env.TEST_RUN ?? '00000000'}_${randomBytes(5).toString('hex')}`
  const url = await cloneDatabase(serverUrl!, template!, name)
  const sql = connect(url, { max: 4 })
  after(async () => {
    await sql.end({ timeout: 5 })
    const admin = connect(serverUrl!, { max: 1 })
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end()
  })
  return { url, name, sql }
}
