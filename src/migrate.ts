// Brings a database up to date: pending ley migrations (sql/migrations/), then every
// definition in sql/procedures/ and sql/views/, re-applied in filename order, all in one
// transaction, after a preflight of ownership and privileges, under an advisory lock.
// Migrations are locked: each applied one's files are recorded by SHA-256 (public.migrations
// .checksums), and a database whose applied migrations differ from the files is refused.
// (A little over 200 lines: the checks that guard one run stay beside the run.)
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import * as ley from 'ley'
import { connect, type Sql, type Tx } from './database.ts'
import { projectRoot } from './paths.ts'

const require = createRequire(import.meta.url)
const { load, MigrationError } = require('ley/lib/util')

export interface MigrateResult {
  migrations: string[]
  definitions: string[]
}

export interface MigrateOptions {
  /** The folder holding sql/migrations, sql/procedures and sql/views (the checkout's by default). */
  root?: string
}

/** The schemas the migrations create; whoever migrates must own what is in them. */
const SCHEMAS = ['data', 'api', 'internal', 'report']
/** Taken for the whole run: concurrent runs on one database wait for each other (advisory locks are per database). */
const MIGRATE_LOCK = 7_340_015_015

/**
 * Pending ley migrations (sql/migrations/) and every definition in sql/procedures/ and
 * sql/views/, in ONE transaction, under an advisory lock, after a preflight: a run either
 * applies everything or nothing.
 */
export async function migrate(url: string, { root = projectRoot }: MigrateOptions = {}): Promise<MigrateResult> {
  const sql = connect(url, { max: 1 })
  try {
    await sql`select pg_advisory_lock(${MIGRATE_LOCK})`
    const sums = await migrationChecksums(join(root, 'sql/migrations'))
    const files = [...sums.keys()].filter((n) => /\.(m?js|ts)$/.test(n))
    await preflight(sql, files)
    let definitions: string[] = []
    // ley's own bookkeeping (public.migrations, its columns), with the table named in full
    // and the definitions applied in the transaction that applies the migrations.
    const driver = {
      connect: () => sql,
      setup: async () => {
        await sql`create table if not exists public.migrations (id serial primary key, name varchar(255) not null, created_at timestamp not null)`
        await checkApplied(sql, sums)
        return sql`select name from public.migrations order by id asc`
      },
      loop: (_: Sql, pending: { name: string; abs: string }[]) =>
        sql.begin(async (tx) => {
          // Migrations have always run with search_path = public; the definitions with the database's own.
          await tx`set local search_path = public`
          for (const file of pending) {
            const migration = await load(file.abs)
            await Promise.resolve(migration.up(tx)).catch((err: Error) => {
              throw new MigrationError(err, file)
            })
            await tx`insert into public.migrations (name, created_at, checksums) values (${file.name}, now(), ${sql.json(filesOf(file.name, sums))})`
          }
          await tx`reset search_path`
          definitions = await applyDefinitionsIn(tx, root)
        }),
      end: async () => {},
    }
    const migrations: string[] = await ley.up({ cwd: root, dir: 'sql/migrations', driver: driver as never })
    if (!migrations.length) definitions = await applyDefinitions(sql, root)
    return { migrations, definitions }
  } finally {
    await sql.end()
  }
}

/**
 * Checks, before anything is applied, what the run will need: this user owns the database
 * (ALTER DATABASE in the definitions), may create schemas in it, owns whatever already
 * exists in the toolkit's schemas, and public.migrations, if there, is ley's table of ours.
 */
export async function preflight(sql: Sql, files: string[]): Promise<void> {
  const [s] = await sql<
    { me: string; superuser: boolean; db: string; owner: string; owns: boolean; can_create: boolean; public_create: boolean }[]
  >`
    select current_user as me, r.rolsuper as superuser, d.datname as db, pg_get_userbyid(d.datdba) as owner,
           pg_has_role(current_user, d.datdba, 'USAGE') as owns,
           has_database_privilege(d.datname, 'CREATE') as can_create,
           coalesce(has_schema_privilege('public', 'CREATE'), false) as public_create
      from pg_database d, pg_roles r where d.datname = current_database() and r.rolname = current_user`
  const refuse = (why: string) => {
    throw new Error(`refusing to migrate ${s.db} as ${s.me}, nothing was applied: ${why}`)
  }
  // A superuser may do all of it; the bookkeeping table is checked for everyone.
  if (!s.superuser) {
    if (!s.owns) refuse(`the database belongs to ${s.owner}: migrate as ${s.owner}, or have it run ALTER DATABASE ${s.db} OWNER TO ${s.me}`)
    if (!s.can_create) refuse(`${s.me} may not create schemas in it: GRANT CREATE ON DATABASE ${s.db} TO ${s.me}`)
    const foreign = await sql<{ what: string; owner: string }[]>`
      select format('schema %I', n.nspname) as what, pg_get_userbyid(n.nspowner) as owner
        from pg_namespace n where n.nspname = any(${SCHEMAS}) and not pg_has_role(current_user, n.nspowner, 'USAGE')
      union all
      select format('%s %I.%I', case c.relkind when 'v' then 'view' when 'S' then 'sequence' when 'i' then 'index' else 'table' end, n.nspname, c.relname), pg_get_userbyid(c.relowner)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = any(${SCHEMAS}) and not pg_has_role(current_user, c.relowner, 'USAGE')
      union all
      select format('function %I.%I', n.nspname, p.proname), pg_get_userbyid(p.proowner)
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname = any(${SCHEMAS}) and not pg_has_role(current_user, p.proowner, 'USAGE')
      limit 5`
    if (foreign.length) refuse(`${foreign.map((f) => `${f.what} belongs to ${f.owner}`).join(', ')}: migrate as their owner`)
  }
  const table = await sql<{ owner: string; columns: string[]; mine: boolean }[]>`
    select pg_get_userbyid(c.relowner) as owner, array(select attname::text from pg_attribute where attrelid = c.oid and attnum > 0 and not attisdropped order by attnum) as columns,
           pg_has_role(current_user, c.relowner, 'USAGE') as mine
      from pg_class c where c.oid = to_regclass('public.migrations')`
  if (!table.length) {
    if (!s.public_create && !s.superuser)
      refuse(`${s.me} may not create public.migrations (the list of applied migrations): GRANT CREATE ON SCHEMA public TO ${s.me}`)
    return
  }
  const foreignTable = (why: string) =>
    refuse(
      `public.migrations is not hirebase's list of applied migrations (${why}); ` +
        'another tool uses that name in this database: give hirebase a database of its own',
    )
  // (checksums: added by the first run that locks migrations)
  if (!['id,name,created_at', 'id,name,created_at,checksums'].includes(table[0].columns.join(','))) {
    foreignTable(`its columns are ${table[0].columns.join(', ')}, not id, name, created_at, checksums`)
  }
  if (!table[0].mine && !s.superuser) foreignTable(`it belongs to ${table[0].owner}`)
  const unknown = await sql<{ name: string }[]>`select name from public.migrations where not (name = any(${files})) order by id limit 3`
  if (unknown.length) foreignTable(`it lists ${unknown.map((u) => u.name).join(', ')}, which are not files of sql/migrations`)
}

/** The SHA-256 of every file in `dir` (sql/migrations/), by name, in name order: what sql/migrations.sum lists. */
export async function migrationChecksums(dir: string): Promise<Map<string, string>> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort()
  const sums = new Map<string, string>()
  for (const name of names)
    sums.set(
      name,
      createHash('sha256')
        .update(await readFile(join(dir, name)))
        .digest('hex'),
    )
  return sums
}

/** The files of migration `name` (0003-reports.mjs): itself and what shares its stem (0003-reports.sql), with their SHA-256. */
function filesOf(name: string, sums: Map<string, string>): Record<string, string> {
  const stem = name.replace(/\.[^.]+$/, '')
  return Object.fromEntries([...sums].filter(([file]) => file.replace(/\.[^.]+$/, '') === stem))
}

/**
 * Refuses a database whose applied migrations differ from the files: a file edited, removed
 * or added since its migration was applied (the database keeps the schema it was given then,
 * silently). A migration applied before checksums were recorded (a database migrated by an
 * earlier version) gets the files' checksums now: from then on it is locked too.
 */
async function checkApplied(sql: Sql, sums: Map<string, string>): Promise<void> {
  await sql`alter table public.migrations add column if not exists checksums jsonb`
  const applied = await sql<{ id: number; name: string; checksums: Record<string, string> | null }[]>`
    select id, name, checksums from public.migrations order by id`
  const drift: string[] = []
  for (const m of applied) {
    const now = filesOf(m.name, sums)
    if (m.checksums === null) {
      await sql`update public.migrations set checksums = ${sql.json(now)} where id = ${m.id}`
      continue
    }
    for (const file of [...new Set([...Object.keys(m.checksums), ...Object.keys(now)])].sort()) {
      const was = m.checksums[file]
      const is = now[file]
      if (was === is) continue
      drift.push(
        `sql/migrations/${file} ${!is ? 'was removed' : !was ? 'was added' : 'was edited'} after ${m.name} was applied` +
          (was && is ? ` (SHA-256 then ${was.slice(0, 12)}…, now ${is.slice(0, 12)}…)` : ''),
      )
    }
  }
  if (drift.length) {
    const [{ db }] = await sql<{ db: string }[]>`select current_database() as db`
    throw new Error(
      `refusing to migrate ${db}, no migration was applied: its applied migrations differ from the files: ${drift.join('; ')}. ` +
        'An applied migration never changes: restore the file as it was (git checkout), and make the change in a new migration',
    )
  }
}

export async function definitionFiles(root = projectRoot): Promise<string[]> {
  const files: string[] = []
  for (const dir of ['sql/procedures', 'sql/views']) {
    const names = (await readdir(join(root, dir)).catch(() => [])).filter((n) => n.endsWith('.sql')).sort()
    files.push(...names.map((n) => join(dir, n)))
  }
  return files
}

export async function applyDefinitions(sql: Sql, root = projectRoot): Promise<string[]> {
  return sql.begin((tx) => applyDefinitionsIn(tx, root))
}

async function applyDefinitionsIn(tx: Tx, root: string): Promise<string[]> {
  const files = await definitionFiles(root)
  for (const file of files) {
    const text = await readFile(join(root, file), 'utf8')
    // Definitions are trusted files from this repository, run as whole scripts.
    await tx.unsafe(text).catch((err: Error) => {
      throw new Error(`${file}: ${err.message}`, { cause: err })
    })
  }
  return files
}
