// The historical CSV load: each file is streamed with COPY into the session's staging
// table and validated there by the same engine as ingest_batch, in one transaction per
// file, so a failed file leaves the database as it was.
import { createReadStream, existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { copyIn } from './copy.ts'
import { CopyLines, csvParser } from './csv.ts'
import { MarkInvalidUtf8 } from './encoding.ts'
import type { Sql } from './database.ts'

export interface IngestBatch {
  batch_id: string
  table_name: string
  source: string
  received: number
  inserted: number
  unchanged: number
  rejected: number
}

export interface LoadResult {
  table: string
  file: string
  batch: IngestBatch
  /** Rejected rows per reason code, most frequent first. */
  reasons: { reason: string; rows: number }[]
  seconds: number
}

export type Progress = (table: string, rowsRead: number) => void

/** The tables in the order they must be loaded (departments and jobs before employees). */
export async function tablesInLoadOrder(sql: Sql): Promise<string[]> {
  const rows = await sql<{ table_name: string }[]>`select table_name from data.dictionary_tables order by load_order`
  return rows.map((r) => r.table_name)
}

export async function loadFile(sql: Sql, table: string, file: string, progress?: Progress): Promise<LoadResult> {
  const started = performance.now()
  const lines = new CopyLines()
  let timer: NodeJS.Timeout | undefined
  if (progress) timer = setInterval(() => progress(table, lines.rows), 250)
  try {
    return await sql.begin(async (tx) => {
      await tx`select api.open_ingest_input()`
      const copy = tx`copy pg_temp.ingest_input (position, fields, unreadable) from stdin`
      await copyIn(copy, createReadStream(file), new MarkInvalidUtf8(), csvParser(), lines).catch((err: Error & { lines?: number }) => {
        throw new Error(`${file}${err.lines ? `, line ${err.lines}` : ''}: ${err.message}`, { cause: err })
      })
      progress?.(table, lines.rows)
      const [batch] = await tx<IngestBatch[]>`select * from api.ingest_staged(${table}, 'csv', true)`
      const reasons = await tx<{ reason: string; rows: number }[]>`
        select reason, count(*)::integer as rows
          from data.ingest_rejects, unnest(reasons) as reason
         where batch_id = ${batch.batch_id}
         group by reason order by rows desc, reason`
      return { table, file, batch, reasons: [...reasons], seconds: (performance.now() - started) / 1000 }
    })
  } finally {
    clearInterval(timer)
  }
}

/** Loads `<table>.csv` from `dir` for every table that has one, in load order. */
export async function loadDirectory(sql: Sql, dir: string, progress?: Progress): Promise<LoadResult[]> {
  const tables = await tablesInLoadOrder(sql)
  const files = tables.map((table) => ({ table, file: resolve(join(dir, `${table}.csv`)) })).filter((t) => existsSync(t.file))
  if (files.length === 0) throw new Error(`no CSV files to load in ${resolve(dir)}: expected ${tables.map((t) => `${t}.csv`).join(', ')}`)
  const results: LoadResult[] = []
  for (const { table, file } of files) {
    // A failure carries the files committed before it (`committed`), for the report.
    results.push(await loadFile(sql, table, file, progress).catch((err) => { throw Object.assign(err, { committed: [...results] }) }))
  }
  return results
}

export function formatResult(r: LoadResult): string {
  const b = r.batch
  const rate = Math.round(b.received / Math.max(r.seconds, 0.001))
  const head = `${r.table}: ${b.received} rows read, ${b.inserted} inserted, ${b.unchanged} unchanged, ${b.rejected} rejected` +
    ` (batch ${b.batch_id}, ${r.seconds.toFixed(2)} s, ${rate} rows/s)`
  const reasons = r.reasons.map((x) => `    ${x.reason}: ${x.rows}`)
  return [head, ...reasons].join('\n')
}
