// A restore of an Avro file someone else made (a file placed in BACKUP_DIR, a backup of
// another tool): the rows skip the ingest rules, and the tables' constraints (NOT NULL, keys)
// are all that is left. Rows the rules reject must not get in this way either.
import assert from 'node:assert/strict'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { describe, test } from 'node:test'
import avro from 'avsc'
import { restoreTables } from '../../src/backup/restore.ts'
import { freshDatabase } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
const dir = await mkdtemp(join(tmpdir(), 'hirebase-restore-rules-'))

async function writeAvro(path: string, records: object[]) {
  const schema: avro.Schema = { type: 'record', name: 'jobs', fields: [{ name: 'job_id', type: 'int' }, { name: 'job_name', type: 'string' }] }
  const encoder = new avro.streams.BlockEncoder(avro.Type.forSchema(schema))
  const written = pipeline(encoder, createWriteStream(path))
  for (const r of records) encoder.write(r)
  encoder.end()
  await written
}

describe('a restore from a made-up file', () => {
  test('refuses rows the ingest rules reject (blank, too long, control characters, out-of-range ids) and changes nothing', async () => {
    await mkdir(join(dir, 'jobs'), { recursive: true })
    const hostile = [
      { job_id: 1, job_name: '' },                        // missing
      { job_id: 2, job_name: '   ' },                     // missing (blank)
      { job_id: 3, job_name: 'x'.repeat(5000) },          // too_long
      { job_id: 4, job_name: 'bell\u0007\u202eevil' },     // bad_text (control, bidi override)
      { job_id: 5, job_name: '  padded  ' },              // never stored so: ingest trims
      { job_id: -7, job_name: 'negative id' },            // out_of_range
    ]
    const stored: unknown[] = []
    for (const [i, row] of hostile.entries()) {
      // What ingest says of the row:
      const [verdict] = await sql`call api.ingest_batch('jobs', ${JSON.stringify([row])}::text)`
      assert.equal(verdict.inserted, row.job_id === 5 ? 1 : 0, JSON.stringify(row))
      await sql`delete from data.jobs`
      const name = `made-up-${i}.avro`
      await writeAvro(join(dir, 'jobs', name), [row])
      await assert.rejects(restoreTables(sql, ['jobs'], { dir, keep: 7, files: { jobs: name } }),
        (err: { code?: string; message: string }) => err.code === 'bad_backup_value' && /the backup of jobs has 1 rows the ingest rules refuse, for example (missing|too_long|bad_text|untrimmed|out_of_range):job_(id|name)/.test(err.message))
      for (const r of await sql`select job_id, left(job_name, 20) as job_name from data.jobs`) {
        if (r.job_id !== 5 || r.job_name !== 'padded') stored.push({ ...r })
      }
    }
    assert.deepEqual(stored, [], 'the restore stored rows the ingest rules reject (or would store otherwise)')
  })
})
