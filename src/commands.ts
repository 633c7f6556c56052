// The one-shot commands of backup.mjs, restore.mjs, report.mjs and schedule.mjs: each
// connects, calls the library (loaded when the command runs) and prints what it did. The
// long-running steps, load and serve, are in tasks.ts.
import { resolve } from 'node:path'
import { connect } from './database.ts'
import { projectRoot } from './paths.ts'
import { tablesInLoadOrder } from './tables.ts'

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MB`

const rate = (rows: number, seconds: number) => `${Math.round(rows / Math.max(seconds, 0.001))} rows/s`
// (CI services give a terminal whose log keeps every \r update: no progress there, as in load.mjs)
const ttyRows =
  process.stderr.isTTY && !process.env.CI
    ? (table: string, rows: number, total: number) =>
        process.stderr.write(`\r\x1b[K${table}: ${rows.toLocaleString('en')}${total ? ` of ${total.toLocaleString('en')}` : ''} rows`)
    : undefined
const clearTty = () => {
  if (ttyRows) process.stderr.write('\r\x1b[K')
}

/** `backup.mjs <table...|--all>`: one Avro file per table, then its path, rows, bytes and SHA-256. */
export async function backupCommand(url: string, tables: string[] | 'all'): Promise<void> {
  const { backupDirFromEnv, backupDirOf, keepFromEnv } = await import('./backup/folders.ts')
  const { backupTable } = await import('./backup/write.ts')
  const sql = connect(url, { max: 1 })
  try {
    const options = { dir: await backupDirOf(sql, backupDirFromEnv()), keep: keepFromEnv(), progress: ttyRows }
    for (const table of tables === 'all' ? await tablesInLoadOrder(sql) : tables) {
      const r = await backupTable(sql, table, options)
      clearTty()
      console.log(
        `${r.path}\n  ${table}: ${r.rows} rows, ${mb(r.bytes)}, sha256 ${r.sha256} (${r.seconds.toFixed(2)} s, ${rate(r.rows, r.seconds)})`,
      )
    }
  } finally {
    await sql.end()
  }
}

/** `backup.mjs --verify <file>`: read it end to end and check checksum, row count and schema. */
export async function verifyCommand(url: string, file: string, table?: string): Promise<void> {
  const { verifyBackup } = await import('./backup/restore.ts')
  const sql = connect(url, { max: 1 })
  try {
    const r = await verifyBackup(sql, resolve(file), table)
    console.log(
      `${r.path}: ok — ${r.table}, ${r.rows} rows${r.metadataRows === null ? ' (no row count in its metadata)' : ', as its metadata says'}, ` +
        `sha256 ${r.sha256} (${r.checksum === 'ok' ? 'matches its .sha256' : 'no .sha256 beside it'}), schema fits the table`,
    )
  } finally {
    await sql.end()
  }
}

/** `backup.mjs --list <table>`: the backups and pre-restore snapshots of a table. */
export async function listCommand(url: string, table: string): Promise<void> {
  const { backupDirFromEnv, backupDirOf, listBackups } = await import('./backup/folders.ts')
  const sql = connect(url, { max: 1 })
  const dir = await (async () => {
    await tablesInLoadOrder(sql, [table]) // IBTAB for a table the database does not know, not "no backups of it"
    return backupDirOf(sql, backupDirFromEnv())
  })().finally(() => sql.end())
  const list = await listBackups(dir, table)
  if (list.length === 0) console.log(`no backups of ${table} in ${dir}`)
  for (const b of list) console.log(`${b.file}\t${b.kind}\t${b.rows ?? '?'} rows\t${mb(b.bytes)}\t${b.created_at ?? ''}`)
}

/** `restore.mjs <table> [file] | --all`, optionally `--dry-run`. */
export async function restoreCommand(url: string, tables: string[] | 'all', file: string | undefined, dryRun: boolean): Promise<void> {
  const { backupDirFromEnv, backupDirOf, keepFromEnv } = await import('./backup/folders.ts')
  const { restoreTables } = await import('./backup/restore.ts')
  const sql = connect(url, { max: 1 })
  try {
    const names = tables === 'all' ? await tablesInLoadOrder(sql) : tables
    const result = await restoreTables(sql, names, {
      dir: await backupDirOf(sql, backupDirFromEnv()),
      keep: keepFromEnv(),
      dryRun,
      progress: ttyRows,
      files: file ? { [names[0]]: file } : {},
    })
    clearTty()
    for (const t of result.tables) {
      console.log(
        `${t.table} ${dryRun ? 'would be restored' : 'restored'} from ${t.file}: ${t.rows_before} rows before, ${t.rows_after} after` +
          ` (${t.added} added, ${t.changed} changed, ${t.removed} removed)` +
          (t.snapshot ? `\n  undo with: npx zx scripts/restore.mjs ${t.table} ${t.snapshot.split('/').slice(1).join('/')}` : ''),
      )
    }
    const rows = result.tables.reduce((n, t) => n + t.rows_after, 0)
    console.log(`${dryRun ? 'dry run, nothing changed' : 'done'} in ${result.seconds.toFixed(2)} s (${rate(rows, result.seconds)})`)
  } finally {
    await sql.end()
  }
}

/** `report.mjs`: the HTML and CSV reports of every year with hires, and of `year` if given, into `out`. */
export async function reportCommand(url: string, year: number | undefined, out: string, force = false): Promise<void> {
  const { describeDatabase } = await import('./database.ts')
  const { writeReports } = await import('./report/write.ts')
  if (year !== undefined && (!Number.isInteger(year) || year < 1 || year > 9999))
    throw new Error(`--year must be a year such as 2021, got "${year}"`)
  const sql = connect(url, { max: 1 })
  try {
    const r = await writeReports(sql, {
      years: year === undefined ? [] : [year],
      out: resolve(out),
      database: describeDatabase(url),
      force,
    })
    console.log(`reports written to ${resolve(out)}: open ${resolve(out, 'index.html')}`)
    if (r.years.length === 0) console.log('  no year has hires yet: load data first (npx zx scripts/load.mjs)')
    for (const y of r.years) {
      console.log(
        y.hires === 0
          ? `  ${y.year}: no hires; its pages say so${r.yearsWithData.length ? ` and link the years with data (${r.yearsWithData.join(', ')})` : ''}`
          : `  ${y.year}: ${y.hires} hires; ${y.quarterRows} hires-by-quarter rows, ${y.aboveMeanRows} departments above the mean`,
      )
    }
  } finally {
    await sql.end()
  }
}

export const REPORTS_DIR = resolve(projectRoot, 'reports')

/** `schedule.mjs [--list|--remove]`: the toolkit's pg_cron jobs for this database. */
export async function scheduleCommand(url: string, action: 'install' | 'list' | 'remove'): Promise<void> {
  const { declaredJobs, installJobs, listJobs, removeJobs } = await import('./schedule.ts')
  const sql = connect(url, { max: 1 })
  try {
    const [{ db }] = await sql<{ db: string }[]>`select current_database() as db`
    if (action === 'remove') return console.log(`removed ${await removeJobs(sql, db)} jobs`)
    if (action === 'install') {
      await installJobs(sql, db)
      for (const j of declaredJobs()) console.log(`installed ${j.name}: ${j.what}`)
    }
    const { timeZone, jobs } = await listJobs(sql)
    console.log(`pg_cron jobs of ${db} (schedules are in ${timeZone}):`)
    if (jobs.length === 0) console.log('  none: npx zx scripts/schedule.mjs installs them')
    for (const j of jobs) {
      console.log(
        `  ${j.job.padEnd(36)} ${j.schedule.padEnd(14)} ${j.active ? 'active' : 'paused'}  last run: ${j.last_run ? `${j.last_run} ${j.last_status}` : 'never'}\n    ${j.command}`,
      )
    }
  } finally {
    await sql.end()
  }
}
