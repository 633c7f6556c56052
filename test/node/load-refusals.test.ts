// What load.mjs must refuse, quickly and with bounded memory, leaving the database as it was:
// symbolic links, FIFOs, devices, records too long or too wide, a file that changes while read.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { execFileSync } from 'node:child_process'
import { loadDirectory, loadFile } from '../../src/load.ts'
import { projectRoot } from '../../src/paths.ts'
import { freshDatabase } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
const counts = async () =>
  (
    await sql`select (select count(*) from data.jobs)::int as jobs, (select count(*) from data.departments)::int as departments,
  (select count(*) from data.ingest_batches)::int as batches, (select count(*) from data.ingest_rejects)::int as rejects`
  )[0]
// Some files here are 100 MB: every folder goes when the file ends.
const folders: string[] = []
after(async () => {
  for (const f of folders) await rm(f, { recursive: true, force: true })
})
const folder = async () => {
  const f = await mkdtemp(join(tmpdir(), 'hirebase-refuse-'))
  folders.push(f)
  return f
}

/** Runs `work`, and how long it took and how much the process's RSS grew meanwhile (sampled). */
async function bounded<T>(work: () => Promise<T>): Promise<{ ms: number; rssMb: number; result: T | Error }> {
  const base = process.memoryUsage().rss
  let peak = base
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 20)
  const started = Date.now()
  const result = await work().catch((err: Error) => err)
  clearInterval(sampler)
  peak = Math.max(peak, process.memoryUsage().rss)
  return { ms: Date.now() - started, rssMb: (peak - base) / 1024 / 1024, result }
}

describe('files load.mjs does not open', () => {
  test('a symbolic link is refused (departments.csv -> a secret file); --follow-symlinks reads a regular target', async () => {
    const before = await counts()
    const dir = await folder()
    const secret = join(await folder(), 'shadow')
    await writeFile(secret, '9101,root:$6$secret\n')
    await symlink(secret, join(dir, 'departments.csv'))
    await assert.rejects(loadDirectory(sql, dir), /departments\.csv: refused: it is a symbolic link \(pass --follow-symlinks/)
    assert.deepEqual(await counts(), before)
    const [r] = await loadDirectory(sql, dir, { followSymlinks: true })
    assert.equal(r.batch.inserted, 1)
    await sql`delete from data.departments where department_id = 9101`
  })

  test('a FIFO is refused at once: no COPY left open, no hang (CLI exits 1 within seconds)', { timeout: 60_000 }, async () => {
    const dir = await folder()
    execFileSync('mkfifo', [join(dir, 'jobs.csv')])
    const before = await counts()
    const { ms, result } = await bounded(() => loadDirectory(sql, dir))
    assert.match(String(result), /jobs\.csv: refused: it is a FIFO, not a regular file/)
    assert.ok(ms < 2000, `${ms} ms`)
    assert.deepEqual(await counts(), before)
    const cli = await runLoad([dir], 20_000)
    assert.equal(cli.code, 1, cli.stderr)
    assert.match(cli.stderr, /refused: it is a FIFO/)
    const [{ open }] =
      await sql`select count(*)::int as open from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`
    assert.equal(open, 0)
  })

  test('/dev/zero (even through --follow-symlinks) is refused as a device, at once', async () => {
    const dir = await folder()
    await symlink('/dev/zero', join(dir, 'jobs.csv'))
    const { ms, rssMb, result } = await bounded(() => loadDirectory(sql, dir, { followSymlinks: true }))
    assert.match(String(result), /jobs\.csv: refused: it is a device, not a regular file/)
    assert.ok(ms < 2000 && rssMb < 50, `${ms} ms, +${rssMb} MB`)
  })
})

describe('records too large', () => {
  test('a 100 MB line is refused after the limit, naming file and line, in bounded time and memory', { timeout: 60_000 }, async () => {
    const file = join(await folder(), 'jobs.csv')
    const out = createWriteStream(file)
    out.write('9201,fine\n9202,')
    const chunk = Buffer.alloc(1024 * 1024, 'x')
    for (let i = 0; i < 100; i++) if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()))
    await new Promise<void>((r) => out.end('\n', () => r()))
    const before = await counts()
    const { ms, rssMb, result } = await bounded(() => loadFile(sql, 'jobs', file))
    assert.match(String(result), /jobs\.csv, line 2: refused: a record longer than 1048576 bytes \(LOAD_MAX_RECORD_BYTES\)/)
    assert.ok(ms < 5000, `${ms} ms`)
    assert.ok(rssMb < 100, `+${rssMb.toFixed(0)} MB`)
    assert.deepEqual(await counts(), before)
    // The limit is settable.
    await assert.rejects(loadFile(sql, 'jobs', file, { maxRecordBytes: 5 }), /line 1: refused: a record longer than 5 bytes/)
  })

  test('10M fields in one record are refused at the field limit, in bounded time and memory', { timeout: 60_000 }, async () => {
    const file = join(await folder(), 'jobs.csv')
    await writeFile(
      file,
      Buffer.concat([Buffer.from('9301,fine\n"quoted, comma",x\n9303'), Buffer.alloc(10_000_000, ','), Buffer.from('\n')]),
    )
    const before = await counts()
    const { ms, rssMb, result } = await bounded(() => loadFile(sql, 'jobs', file))
    assert.match(String(result), /jobs\.csv, line 3: refused: more than 100 fields in one record \(LOAD_MAX_FIELDS\)/)
    assert.ok(ms < 5000 && rssMb < 100, `${ms} ms, +${rssMb.toFixed(0)} MB`)
    assert.deepEqual(await counts(), before)
    const cli = await runLoad([file.replace(/\/jobs\.csv$/, ''), '--max-fields', '1'], 20_000)
    assert.equal(cli.code, 1)
    assert.match(cli.stderr, /jobs\.csv, line 1: refused: more than 1 fields/)
  })
})

test('the limits count records, whatever their line ends (CRLF, LF, CR) and quoted line breaks', async () => {
  const rows = Array.from({ length: 200 }, (_, i) => `${9400 + i},Job ${i}`)
  const file = join(await folder(), 'jobs.csv')
  await writeFile(file, rows.slice(0, 100).join('\r') + '\r\n' + rows.slice(100).join('\r\n') + '\n9600,"two\r\nlines"\r')
  const result = await loadFile(sql, 'jobs', file, { maxRecordBytes: 20, maxFields: 2 })
  assert.ok(result.batch.received >= 200, String(result.batch.received)) // (how records split is the parser's business: only no refusal here)
  await sql`delete from data.jobs where job_id between 9400 and 9600`
})

test('the limits read quotes as the dialect does: a stray quote in an unquoted field is data, a quoted field may hold commas and line breaks', async () => {
  const rows = Array.from({ length: 300 }, (_, i) => `${9700 + i},Job "number" ${i}`)
  const file = join(await folder(), 'jobs.csv')
  // A BOM, then a quoted first field; a stray quote on line 2 must not make the rest one record.
  await writeFile(file, '\uFEFF"9699","quoted, with\na break"\n' + rows.join('\n') + '\n"9999","a ""quoted"" quote, and more"\n')
  const result = await loadFile(sql, 'jobs', file, { maxRecordBytes: 40, maxFields: 2 })
  assert.ok(result.batch.received >= 300, String(result.batch.received))
  await sql`delete from data.jobs where job_id between 9699 and 9999`
  const wide = join(await folder(), 'jobs.csv')
  await writeFile(wide, '9001,"a, b, c"\n9002,x"y,z,w\n')
  await assert.rejects(loadFile(sql, 'jobs', wide, { maxFields: 3 }), /jobs\.csv, line 2: refused: more than 3 fields/)
})

test('a file truncated while it is read is refused and nothing of it is kept', { timeout: 120_000 }, async () => {
  const file = join(await folder(), 'jobs.csv')
  const rows = 600_000
  const out = createWriteStream(file)
  for (let i = 0; i < rows; i += 10_000) {
    let text = ''
    for (let j = i; j < i + 10_000; j++) text += `${100_000 + j},Job number ${j}\n`
    if (!out.write(text)) await new Promise<void>((r) => out.once('drain', () => r()))
  }
  await new Promise<void>((r) => out.end(() => r()))
  const before = await counts()
  let cut = false
  const result = await loadFile(sql, 'jobs', file, {
    progress: (_t, read) => {
      if (!cut && read > 0) {
        cut = true
        void truncate(file, 1000)
      }
    },
  }).catch((err: Error) => err)
  assert.ok(cut, 'the file was read too fast to cut')
  assert.match(String(result), /jobs\.csv changed while it was read .*nothing loaded/)
  assert.deepEqual(await counts(), before)
})

test('SIGTERM during a load: the process exits within seconds and the load is rolled back', { timeout: 120_000 }, async () => {
  const dir = await folder()
  const out = createWriteStream(join(dir, 'jobs.csv'))
  for (let i = 0; i < 2_000_000; i += 10_000) {
    let text = ''
    for (let j = i; j < i + 10_000; j++) text += `${200_000 + j},Job ${j}\n`
    if (!out.write(text)) await new Promise<void>((r) => out.once('drain', () => r()))
  }
  await new Promise<void>((r) => out.end(() => r()))
  const before = await counts()
  const child = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/load.mjs', dir], {
    cwd: projectRoot,
    env: { ...process.env, DATABASE_URL: db.url },
  })
  let stdout = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  while (!stdout.includes('loading')) await new Promise((r) => setTimeout(r, 50))
  await new Promise((r) => setTimeout(r, 300))
  const signalled = Date.now()
  child.kill('SIGTERM')
  const code = await new Promise((r) => child.on('exit', (c) => r(c)))
  assert.ok(Date.now() - signalled < 5000, `exited after ${Date.now() - signalled} ms`)
  assert.equal(code, 130)
  // The server rolls the COPY back once it notices the closed connection.
  for (let i = 0; i < 50 && JSON.stringify(await counts()) !== JSON.stringify(before); i++) await new Promise((r) => setTimeout(r, 100))
  assert.deepEqual(await counts(), before)
})

function runLoad(args: string[], timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/load.mjs', ...args], {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: db.url },
    })
    let stderr = ''
    child.stderr.on('data', (d) => {
      stderr += d
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      stderr += '\n(killed: no exit within the time limit)'
    }, timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stderr })
    })
  })
}
