// The steps the entry points chain together (npm start runs several of them in one process).
import { resolve } from 'node:path'
import { connect } from './database.ts'
import { formatResult, loadDirectory, type LoadResult, type Progress } from './load.ts'
import { migrate } from './migrate.ts'
import { projectRoot } from './paths.ts'

export const SAMPLE_DIR = resolve(projectRoot, 'data/historical')

/** Rows read so far, redrawn in place on a terminal; silent otherwise. */
const ttyProgress: Progress | undefined = process.stderr.isTTY
  ? (table, rows) => process.stderr.write(`\r\x1b[K${table}: ${rows.toLocaleString('en')} rows read`)
  : undefined

export async function loadSamples(url: string, dir = SAMPLE_DIR): Promise<LoadResult[]> {
  await migrate(url)
  const sql = connect(url, { max: 1 })
  try {
    console.log(`loading ${resolve(dir)}`)
    const results = await loadDirectory(sql, dir, ttyProgress && ((t, n) => ttyProgress(t, n)))
    if (ttyProgress) process.stderr.write('\r\x1b[K')
    for (const r of results) console.log(formatResult(r))
    if (results.some((r) => r.batch.rejected > 0)) console.log('rejected rows and their reasons: select * from ingest_rejects where batch_id = <batch>')
    return results
  } finally {
    await sql.end()
  }
}
