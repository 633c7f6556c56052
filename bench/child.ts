// One toolkit operation in a process of its own, so its peak RSS is the toolkit's alone.
// Usage: node --import tsx bench/child.ts load <dir> [jobs] | backup <table> <dir> | restore <table> <dir> <file>
// Prints one JSON line: { seconds, rss_mb, result }.
import { backupTable } from '../src/backup/write.ts'
import { restoreTables } from '../src/backup/restore.ts'
import { connect } from '../src/database.ts'
import { loadDirectory } from '../src/load.ts'

const [op, ...args] = process.argv.slice(2)
const sql = connect(process.env.DATABASE_URL!, { max: 2 })
const started = performance.now()
let result: unknown
if (op === 'load')
  result = (await loadDirectory(sql, args[0], { jobs: Number(args[1] ?? 1), url: process.env.DATABASE_URL })).map((r) => ({
    table: r.table,
    ...r.batch,
  }))
else if (op === 'backup') result = await backupTable(sql, args[0], { dir: args[1], keep: 100 })
else if (op === 'restore') result = await restoreTables(sql, [args[0]], { dir: args[1], keep: 100, files: { [args[0]]: args[2] } })
else throw new Error(`unknown operation ${op}`)
const seconds = (performance.now() - started) / 1000
await sql.end()
console.log(JSON.stringify({ seconds, rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), result }))
