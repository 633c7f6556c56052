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

/** Serves the API until `shutdown` fires: then stops accepting, finishes in-flight requests, closes the pool. */
export async function serve(url: string, shutdown: AbortSignal): Promise<void> {
  const { buildServer, checkListenAddress } = await import('./server.ts')
  const host = process.env.HOST ?? '127.0.0.1'
  const port = Number(process.env.PORT ?? 8000)
  const token = process.env.API_TOKEN || undefined
  checkListenAddress(host, token)
  const { app, sql } = await buildServer({ databaseUrl: url, token, logLevel: process.env.LOG_LEVEL })
  await app.listen({ host, port })
  console.log(`API on http://${host.includes(':') ? `[${host}]` : host}:${(app.server.address() as { port: number }).port}` +
    ` (OpenAPI: /openapi.json; writes ${token ? 'need the bearer token' : 'are open: set API_TOKEN to require a token'})`)
  await new Promise((resolve) => shutdown.addEventListener('abort', resolve, { once: true }))
  await app.close()
  await sql.end({ timeout: 5 })
}
