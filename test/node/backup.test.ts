// Avro backup and restore: round trips, refusals that change nothing, the orphan check,
// crash safety, interop with another Avro implementation, and the API routes.
// Long, as one file: its tests share one database, its backup folder and its fingerprints.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { createWriteStream, existsSync } from 'node:fs'
import { copyFile, mkdtemp, readdir, readFile, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { before, describe, test } from 'node:test'
import avro from 'avsc'
import { databaseFolder, listBackups } from '../../src/backup/folders.ts'
import { backupTable } from '../../src/backup/write.ts'
import { restoreTables, verifyBackup } from '../../src/backup/restore.ts'
import { projectRoot } from '../../src/paths.ts'
import { freshDatabase, listenApi } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
const dir = await mkdtemp(join(tmpdir(), 'hirebase-backups-'))
const options = { dir, keep: 7 }

/** Every row of a table, as text, in id order: equal fingerprints mean identical contents. */
const fingerprint = async (table: string) =>
  (await sql`select md5(coalesce(string_agg(t::text, '|' order by t), '')) as h, count(*)::int as n from ${sql(`data.${table}`)} t`)[0]
const fingerprints = async () => ({ d: await fingerprint('departments'), j: await fingerprint('jobs'), e: await fingerprint('employees') })

const ingest = (table: string, rows: unknown[]) => sql`call ingest_batch(${table}, ${sql.json(rows as never)})`

before(async () => {
  await ingest('departments', [
    { department_id: 1, department_name: 'Ingeniería' },
    { department_id: 2, department_name: 'Sales, "EMEA"' },
    { department_id: 3, department_name: 'Tab\\Back' },
  ])
  await ingest('jobs', [
    { job_id: 1, job_name: 'Dévelopeur 开发' },
    { job_id: 2, job_name: 'Analyst' },
  ])
  await ingest('employees', [
    { employee_id: 1, employee_name: 'Zoë', hiring_date: '2021-07-27T16:02:08.123456Z', department_id: 1, job_id: 1 },
    { employee_id: 2, employee_name: 'Ōtani', hiring_date: '1969-12-31T23:59:59.999999Z', department_id: 2, job_id: 2 },
    // Past 2^53 microseconds since 1970: only a BigInt long holds it exactly.
    { employee_id: 3, employee_name: 'Future', hiring_date: '2300-01-01T00:00:00.000001Z', department_id: 1, job_id: 2 },
  ])
})

async function newestFile(table: string) {
  return join(dir, table, (await listBackups(dir, table)).find((b) => b.kind === 'backup')!.file)
}

describe('round trips', () => {
  test('every table restores row for row, microseconds and non-ASCII names included', async () => {
    const original = await fingerprints()
    for (const table of ['departments', 'jobs', 'employees']) await backupTable(sql, table, options)
    await sql`update data.employees set employee_name = 'Changed', hiring_date = hiring_date + interval '1 microsecond' where employee_id = 1`
    await sql`delete from data.employees where employee_id = 2`
    await ingest('employees', [{ employee_id: 4, employee_name: 'New', hiring_date: '2022-01-01T00:00:00Z', department_id: 3, job_id: 1 }])
    await ingest('jobs', [{ job_id: 3, job_name: 'Extra' }])
    const result = await restoreTables(sql, ['departments', 'jobs', 'employees'], options)
    assert.deepEqual(await fingerprints(), original)
    const employees = result.tables.find((t) => t.table === 'employees')!
    assert.deepEqual([employees.added, employees.changed, employees.removed], [1, 1, 1])
    const [row] =
      await sql`select to_char(hiring_date at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') as t from employees where employee_id = 3`
    assert.equal(row.t, '2300-01-01 00:00:00.000001')
  })

  test('a restore from an older backup, and undoing it from the pre-restore snapshot', async () => {
    const older = await backupTable(sql, 'jobs', options)
    await ingest('jobs', [{ job_id: 10, job_name: 'Later' }])
    await backupTable(sql, 'jobs', options)
    const withLater = await fingerprint('jobs')
    const result = await restoreTables(sql, ['jobs'], { ...options, files: { jobs: older.file.split('/').pop() } })
    assert.equal((await fingerprint('jobs')).n, withLater.n - 1)
    await restoreTables(sql, ['jobs'], { ...options, files: { jobs: result.tables[0].snapshot!.replace(/^jobs\//, '') } })
    assert.deepEqual(await fingerprint('jobs'), withLater)
  })

  test('--dry-run reports the differences and changes nothing', async () => {
    await backupTable(sql, 'jobs', options)
    await ingest('jobs', [{ job_id: 11, job_name: 'Not in the backup' }])
    const before = await fingerprints()
    const result = await restoreTables(sql, ['jobs'], { ...options, dryRun: true })
    assert.deepEqual(await fingerprints(), before)
    assert.deepEqual([result.tables[0].removed, result.tables[0].added, result.tables[0].rows_after], [1, 0, before.j.n - 1])
    assert.equal(result.tables[0].snapshot, undefined)
  })

  test('the file says what it holds, and --verify checks it end to end', async () => {
    const r = await backupTable(sql, 'employees', options)
    const header = avro.extractFileHeader(r.path) as { meta: Record<string, Buffer> }
    assert.equal(header.meta['hirebase.table'].toString(), 'employees')
    assert.equal(Number(header.meta['hirebase.rows'].toString()), r.rows)
    assert.ok(header.meta['hirebase.version'] && header.meta['hirebase.created_at'])
    assert.match(r.file, /^employees\/\d{8}T\d{9}Z\.avro$/)
    assert.equal((await readFile(`${r.path}.sha256`, 'utf8')).split(' ')[0], r.sha256)
    const check = await verifyBackup(sql, r.path)
    assert.deepEqual([check.table, check.rows, check.checksum, check.sha256], ['employees', r.rows, 'ok', r.sha256])
  })

  test('BACKUP_KEEP: only the newest backups stay', async () => {
    const keepDir = await mkdtemp(join(tmpdir(), 'hirebase-keep-'))
    for (let i = 0; i < 4; i++) await backupTable(sql, 'departments', { dir: keepDir, keep: 2 })
    const names = (await readdir(join(keepDir, 'departments'))).sort()
    assert.equal(names.filter((n) => n.endsWith('.avro')).length, 2)
    assert.equal(names.filter((n) => n.endsWith('.sha256')).length, 2)
  })
})

/** Writes an Avro file as another tool would, resolving once the file is complete on disk. */
async function writeAvro(path: string, schema: avro.Schema, records: object[]) {
  const encoder = new avro.streams.BlockEncoder(avro.Type.forSchema(schema))
  const written = pipeline(encoder, createWriteStream(path))
  for (const r of records) encoder.write(r)
  encoder.end()
  await written
}

describe('refusals leave the table as it was', () => {
  const refuse = async (table: string, file: string | undefined, expected: RegExp) => {
    const before = await fingerprints()
    await assert.rejects(restoreTables(sql, [table], { ...options, files: { [table]: file } }), expected)
    assert.deepEqual(await fingerprints(), before)
    const [{ n }] =
      await sql`select count(*)::int as n from pg_stat_activity where state like 'idle in transaction%' and datname = current_database()`
    assert.equal(n, 0)
  }
  const damagedCopy = async (table: string, name: string, damage: (path: string) => Promise<void>) => {
    const path = join(dir, table, name)
    const source = await backupTable(sql, table, options)
    await copyFile(source.path, path)
    await copyFile(`${source.path}.sha256`, `${path}.sha256`)
    await damage(path)
    return name
  }

  test('a truncated file', async () => {
    const name = await damagedCopy('employees', 'truncated.avro', async (p) => truncate(p, (await readFile(p)).length - 40))
    await refuse('employees', name, /is truncated: block 1 should hold \d+ bytes|incomplete|damaged/)
  })
  test('a flipped byte', async () => {
    const name = await damagedCopy('employees', 'flipped.avro', async (p) => {
      const bytes = await readFile(p)
      bytes[bytes.length - 30] ^= 0xff
      await writeFile(p, bytes)
    })
    await refuse('employees', name, /damaged|not a readable Avro file/)
  })
  test('with no checksum beside it, a damaged sync marker is still caught', async () => {
    // (deflate blocks carry no checksum: only the .sha256 catches a flip inside one)
    const name = await damagedCopy('jobs', 'flipped-nosum.avro', async (p) => {
      const bytes = await readFile(p)
      bytes[bytes.length - 1] ^= 0xff
      await writeFile(p, bytes)
      await writeFile(`${p}.sha256`, '')
    })
    await refuse('jobs', name, /sync marker after block \d+ is wrong/)
  })
  test('a file of another table', async () => refuse('departments', await newestFile('jobs'), /is a backup of jobs, not of departments/))
  test('a schema that does not fit the table', async () => {
    await writeAvro(
      join(dir, 'departments', 'foreign.avro'),
      {
        type: 'record',
        name: 'departments',
        fields: [
          { name: 'department_id', type: 'string' },
          { name: 'department_name', type: 'string' },
        ],
      },
      [{ department_id: 'x', department_name: 'y' }],
    )
    await refuse('departments', 'foreign.avro', /schema mismatch: departments\.department_id is integer/)
  })
  test('a missing file', async () => refuse('jobs', 'nope.avro', /no such backup file/))
  test('paths outside the backup folder', async () => {
    await refuse('jobs', '../../../../etc/passwd', /outside the backup folder/)
    await refuse('jobs', '/etc/passwd', /outside the backup folder/)
  })
  test('values the table cannot hold fail in the database, and the connection is released', async () => {
    await writeAvro(
      join(dir, 'jobs', 'too-big.avro'),
      {
        type: 'record',
        name: 'jobs',
        fields: [
          { name: 'job_id', type: 'long' },
          { name: 'job_name', type: 'string' },
        ],
      },
      [{ job_id: 3_000_000_000, job_name: 'overflow' }],
    )
    await refuse('jobs', 'too-big.avro', /out_of_range:job_id \(id 3000000000\)/)
  })
  test('rows the ingest rules reject, from a file someone else made (blank, too long, control characters, untrimmed, id below 1)', async () => {
    const jobsSchema: avro.Schema = {
      type: 'record',
      name: 'jobs',
      fields: [
        { name: 'job_id', type: 'int' },
        { name: 'job_name', type: 'string' },
      ],
    }
    for (const [row, reason] of [
      [{ job_id: 901, job_name: '' }, 'missing:job_name'],
      [{ job_id: 902, job_name: '   ' }, 'missing:job_name'],
      [{ job_id: 903, job_name: 'x'.repeat(5000) }, 'too_long:job_name'],
      [{ job_id: 904, job_name: 'bell\u0007\u202eevil' }, 'bad_text:job_name'],
      [{ job_id: 905, job_name: '  padded  ' }, 'job_name not trimmed'],
      [{ job_id: -7, job_name: 'negative id' }, 'out_of_range:job_id'],
    ] as const) {
      await writeAvro(join(dir, 'jobs', 'made-up.avro'), jobsSchema, [row])
      await refuse('jobs', 'made-up.avro', new RegExp(`the backup of jobs has 1 rows the ingest rules refuse, for example ${reason}`))
    }
  })
  const employeesSchema: avro.Schema = {
    type: 'record',
    name: 'employees',
    fields: [
      { name: 'employee_id', type: 'int' },
      { name: 'employee_name', type: 'string' },
      { name: 'hiring_date', type: 'string' },
      { name: 'department_id', type: 'int' },
      { name: 'job_id', type: 'int' },
    ],
  }
  const employee = (employee_id: number, hiring_date = '2021-01-01T00:00:00Z') => ({
    employee_id,
    employee_name: 'a',
    hiring_date,
    department_id: 1,
    job_id: 1,
  })
  test('an id twice in the file', async () => {
    await writeAvro(join(dir, 'employees', 'twice.avro'), employeesSchema, [employee(8), employee(7), employee(8)])
    await refuse('employees', 'twice.avro', /the backup of employees has id 8 more than once/)
  })
  test('a value no table can store (NUL), early in a long file: reading stops there, naming the record and field', async () => {
    const records = Array.from({ length: 5000 }, (_, i) => ({ job_id: 100 + i, job_name: i === 0 ? 'nul\u0000byte' : `job ${i}` }))
    await writeAvro(
      join(dir, 'jobs', 'nul.avro'),
      {
        type: 'record',
        name: 'jobs',
        fields: [
          { name: 'job_id', type: 'int' },
          { name: 'job_name', type: 'string' },
        ],
      },
      records,
    )
    await refuse('jobs', 'nul.avro', /nul\.avro, record 1: job_name holds a NUL character/)
  })
  test('a date-time that does not exist fails a dry run too', async () => {
    await writeAvro(join(dir, 'employees', 'feb-30.avro'), employeesSchema, [employee(900), employee(901, '2021-02-30T00:00:00Z')])
    await assert.rejects(
      restoreTables(sql, ['employees'], { ...options, dryRun: true, files: { employees: 'feb-30.avro' } }),
      /"2021-02-30T00:00:00Z" in the backup is not an RFC 3339 instant/,
    )
    await refuse('employees', 'feb-30.avro', /not an RFC 3339 instant/)
  })
  test('date-times a read could not write back are refused: other forms, years outside 0001-9999', async () => {
    for (const value of ['tomorrow 10:00', '2021-06-01 12:00:00', '20000-01-01T00:00:00Z', '0001-01-01T00:00:00+01:00']) {
      await writeAvro(join(dir, 'employees', 'odd-date.avro'), employeesSchema, [employee(920, value)])
      await refuse('employees', 'odd-date.avro', /not an RFC 3339 instant in years 0001-9999/)
    }
  })
  test('a date-time string that is not RFC 3339 names the record', async () => {
    await writeAvro(join(dir, 'employees', 'no-time.avro'), employeesSchema, [employee(1), employee(2, '2021-01-01')])
    await refuse('employees', 'no-time.avro', /no-time\.avro, record 2: hiring_date "2021-01-01" is not an RFC 3339 date-time/)
  })
})

describe('orphans', () => {
  test('restoring departments without one that employees use fails, naming how many rows; --all works', async () => {
    for (const table of ['departments', 'jobs', 'employees']) await backupTable(sql, table, options)
    const consistent = await fingerprints()
    await ingest('departments', [{ department_id: 50, department_name: 'Newer' }])
    await ingest('employees', [
      { employee_id: 50, employee_name: 'A', hiring_date: '2021-01-01T00:00:00Z', department_id: 50, job_id: 1 },
      { employee_id: 51, employee_name: 'B', hiring_date: '2021-01-01T00:00:00Z', department_id: 50, job_id: 1 },
    ])
    const before = await fingerprints()
    await assert.rejects(restoreTables(sql, ['departments'], options), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'IBORP')
      assert.match(err.message, /would orphan 2 employees rows/)
      return true
    })
    assert.deepEqual(await fingerprints(), before)
    // All three from their newest backups, in one transaction: back to the consistent state.
    await restoreTables(sql, ['departments', 'jobs', 'employees'], options)
    assert.deepEqual(await fingerprints(), consistent)
  })
})

describe('crash safety', () => {
  test('a backup killed part-way leaves no file under a real name', { timeout: 120_000 }, async () => {
    const crashDir = await mkdtemp(join(tmpdir(), 'hirebase-crash-'))
    // Long, hardly compressible names keep the backup busy long enough to be caught part-way.
    await sql`insert into data.employees select 100000 + g, 'Bulk ' || repeat(md5(g::text), 8), '2021-01-01'::timestamptz + g * interval '1 minute', 1, 1
              from generate_series(1, 300000) g`
    const child = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/backup.mjs', 'employees'], {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: db.url, BACKUP_DIR: crashDir },
      stdio: 'ignore',
    })
    const folder = join(databaseFolder(crashDir, db.name), 'employees')
    let sawTmp = false
    for (let i = 0; i < 600 && !sawTmp; i++) {
      sawTmp = existsSync(folder) && (await readdir(folder)).some((n) => n.endsWith('.tmp'))
      if (!sawTmp) await new Promise((r) => setTimeout(r, 10))
    }
    const exited = new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.on('exit', r)))
    child.kill('SIGKILL')
    await exited
    assert.ok(sawTmp, 'the backup never started writing')
    assert.deepEqual(
      (await readdir(folder)).filter((n) => n.endsWith('.avro')),
      [],
    )
    // The next backup clears the leftover and completes.
    const r = await backupTable(sql, 'employees', { dir: databaseFolder(crashDir, db.name) })
    assert.deepEqual(
      (await readdir(folder)).filter((n) => n.endsWith('.tmp')),
      [],
    )
    assert.ok(r.rows > 300000)
    await sql`delete from data.employees where employee_id > 100000`
  })
})

describe('interop with another Avro implementation (python3-avro)', () => {
  const python = '/usr/bin/python3'
  const hasPythonAvro = (() => {
    try {
      execFileSync(python, ['-c', 'import avro.datafile'])
      return true
    } catch {
      return false
    }
  })()
  const skip = (t: { skip: (m: string) => void }) => {
    console.warn('SKIPPED: python3-avro is not installed, so the interop checks did not run (apt-get install python3-avro; CI installs it)')
    t.skip('python3-avro is not installed')
  }

  test('python reads our backup, row for row', async (t) => {
    if (!hasPythonAvro) return skip(t)
    const r = await backupTable(sql, 'employees', options)
    const out = execFileSync(
      python,
      [
        '-c',
        `
import avro.datafile, avro.io, json, sys
rows = []
with avro.datafile.DataFileReader(open(sys.argv[1], 'rb'), avro.io.DatumReader()) as reader:
    for row in reader:
        row['hiring_date'] = row['hiring_date'].strftime('%Y-%m-%dT%H:%M:%S.%fZ')
        rows.append(row)
print(json.dumps(rows, ensure_ascii=False))`,
        r.path,
      ],
      { encoding: 'utf8' },
    )
    const expected =
      await sql`select employee_id, employee_name, to_char(hiring_date at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as hiring_date,
      department_id, job_id from employees order by employee_id`
    assert.deepEqual(JSON.parse(out), [...expected])
  })

  test('a file python wrote (timestamp-millis, and RFC 3339 strings) restores correctly', async (t) => {
    if (!hasPythonAvro) return skip(t)
    const before = await sql`select employee_id, employee_name, hiring_date, department_id, job_id from employees order by employee_id`
    for (const [name, type, value] of [
      [
        'python-millis.avro',
        '{"type": "long", "logicalType": "timestamp-millis"}',
        'datetime.datetime(2021, 7, 27, 16, 2, 8, 123000, tzinfo=datetime.timezone.utc)',
      ],
      ['python-string.avro', '"string"', '"2021-07-27T18:02:08.123+02:00"'],
    ]) {
      execFileSync(python, [
        '-c',
        `
import avro.datafile, avro.io, avro.schema, datetime, sys
schema = avro.schema.parse('{"type": "record", "name": "Employee", "namespace": "other.tool", "fields": [' +
  '{"name": "employee_id", "type": "long"}, {"name": "employee_name", "type": "string"}, {"name": "hiring_date", "type": ${type}},' +
  '{"name": "department_id", "type": "int"}, {"name": "job_id", "type": "int"}]}')
with avro.datafile.DataFileWriter(open(sys.argv[1], 'wb'), avro.io.DatumWriter(), schema, codec='deflate') as w:
    w.append({"employee_id": 900, "employee_name": "Written by Python", "hiring_date": ${value}, "department_id": 1, "job_id": 1})`,
        join(dir, 'employees', name),
      ])
      await restoreTables(sql, ['employees'], { ...options, files: { employees: name } })
      const rows =
        await sql`select employee_id, employee_name, to_char(hiring_date at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as t from employees`
      assert.deepEqual([...rows], [{ employee_id: 900, employee_name: 'Written by Python', t: '2021-07-27T16:02:08.123000' }], name)
    }
    // Put the employees back.
    await sql`delete from employees`
    await sql`insert into data.employees ${sql([...before] as never[])}`
  })
})

const { base } = await listenApi({ databaseUrl: db.url, backupDir: dir, token: 'tok' })

describe('API routes', () => {
  const auth = { authorization: 'Bearer tok', 'content-type': 'application/json' }

  test('POST backup (201), GET the list, POST restore of a file from it', async () => {
    assert.equal((await fetch(`${base}/tables/jobs/backup`, { method: 'POST' })).status, 401)
    const made = await fetch(`${base}/tables/jobs/backup`, { method: 'POST', headers: { authorization: 'Bearer tok' } })
    assert.equal(made.status, 201)
    const backup = await made.json()
    assert.deepEqual(Object.keys(backup).sort(), ['bytes', 'file', 'path', 'rows', 'sha256', 'table'])
    assert.match(backup.sha256, /^[0-9a-f]{64}$/)
    const list = await (await fetch(`${base}/tables/jobs/backups`)).json()
    assert.equal(list[0].file, backup.file.replace(/^jobs\//, ''))
    const restored = await fetch(`${base}/tables/jobs/restore`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ file: list[0].file }),
    })
    assert.equal(restored.status, 200)
    const body = await restored.json()
    assert.equal(body.rows_after, backup.rows)
    assert.ok(body.snapshot.startsWith('jobs/pre-restore/'))
  })

  test('restore errors: a path outside the list 400, a missing file 404, an unknown table 404, orphans 409', async () => {
    const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) })
    assert.equal((await post('/tables/jobs/restore', { file: '../departments/x.avro' })).status, 400)
    const missing = await post('/tables/jobs/restore', { file: 'nope.avro' })
    assert.deepEqual([missing.status, (await missing.json()).error.code], [404, 'backup_not_found'])
    assert.equal((await post('/tables/salaries/restore', { newest: true })).status, 404)
    assert.equal((await fetch(`${base}/tables/salaries/backups`)).status, 404)
    assert.equal(
      (await fetch(`${base}/tables/departments/backup`, { method: 'POST', headers: { authorization: 'Bearer tok' } })).status,
      201,
    )
    await ingest('departments', [{ department_id: 60, department_name: 'Fresh' }])
    await ingest('employees', [
      { employee_id: 60, employee_name: 'Orphan-to-be', hiring_date: '2021-01-01T00:00:00Z', department_id: 60, job_id: 1 },
    ])
    const oldest = (await listBackups(databaseFolder(dir, db.name), 'departments'))
      .filter((b) => b.kind === 'backup' && /^\d{8}T/.test(b.file))
      .at(-1)!
    const orphaned = await post('/tables/departments/restore', { file: oldest.file })
    assert.deepEqual([orphaned.status, (await orphaned.json()).error.code], [409, 'would_orphan_rows'])
  })
})
