// Brings a database up to date: pending ley migrations (sql/migrations/), then every
// definition in sql/procedures/ and sql/views/, re-applied in filename order in one transaction.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import * as ley from 'ley'
import { connect, type Sql } from './database.ts'
import { projectRoot } from './paths.ts'

const require = createRequire(import.meta.url)
const leyPostgres = require('ley/lib/clients/postgres')

export interface MigrateResult { migrations: string[]; definitions: string[] }

export async function migrate(url: string): Promise<MigrateResult> {
  // ley's own postgres driver, connected with our URL; its `migrations` table lives in public.
  const driver = { ...leyPostgres, connect: () => connect(url, { max: 1, connection: { search_path: 'public' } }) }
  const migrations = await ley.up({ cwd: projectRoot, dir: 'sql/migrations', driver })
  const sql = connect(url, { max: 1 })
  try {
    const definitions = await applyDefinitions(sql)
    return { migrations, definitions }
  } finally {
    await sql.end()
  }
}

export async function definitionFiles(): Promise<string[]> {
  const files: string[] = []
  for (const dir of ['sql/procedures', 'sql/views']) {
    const names = (await readdir(join(projectRoot, dir)).catch(() => [])).filter((n) => n.endsWith('.sql')).sort()
    files.push(...names.map((n) => join(dir, n)))
  }
  return files
}

export async function applyDefinitions(sql: Sql): Promise<string[]> {
  const files = await definitionFiles()
  await sql.begin(async (tx) => {
    for (const file of files) {
      const text = await readFile(join(projectRoot, file), 'utf8')
      // Definitions are trusted files from this repository, run as whole scripts.
      await tx.unsafe(text).catch((err: Error) => { throw new Error(`${file}: ${err.message}`, { cause: err }) })
    }
  })
  return files
}
