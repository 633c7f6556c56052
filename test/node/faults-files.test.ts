// Faults on disk: a full or unwritable backup folder, cut and inflating Avro files written by
// another tool, a FIFO among the backups, and what an interruption leaves behind. Each asserts
// a bounded answer time, the status and message, a healthy server afterwards, no partial
// files, and exact table contents.
// Long, as one file: its faults share one database and its fingerprints.
import assert from 'node:assert/strict'
import { execFile, execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { cleanBackupFolder, databaseFolder, listBackups, PRE_RESTORE } from '../../src/backup/folders.ts'
import { backupTable, writeBackup } from '../../src/backup/write.ts'
import { restoreTables, verifyBackup } from '../../src/backup/restore.ts'
import { projectRoot } from '../../src/paths.ts'
import { freshDatabase, listenApi, startServeScript, timed } from '../support.ts'

const execFileAsync = promisify(execFile)
const db = await freshDatabase()
const { sql } = db
const zx = join(projectRoot, 'node_modules/.bin/zx')
const python = '/usr/bin/python3'
const isRoot = process.getuid?.() === 0

const fingerprint = async (table: string) =>
  (await sql`select md5(coalesce(string_agg(t::text, '|' order by t), '')) as h, count(*)::int as n from ${sql(`data.${table}`)} t`)[0]
const fingerprints = async () => ({ d: await fingerprint('departments'), j: await fingerprint('jobs'), e: await fingerprint('employees') })
const leftovers = async (folder: string) => (await readdir(folder).catch(() => [] as string[])).filter((n) => n.endsWith('.tmp'))

before(async () => {
  await sql`call ingest_batch('departments', ${sql.json([
    { department_id: 1, department_name: 'One' },
    { department_id: 2, department_name: 'Two' },
  ])})`
  await sql`call ingest_batch('jobs', ${sql.json([{ job_id: 1, job_name: 'Job' }])})`
  // Hardly compressible names: a backup of employees is several MB, more than a 1 MB disk.
  await sql`insert into data.employees select g, 'Name ' || md5(g::text) || md5((g * 7)::text), '2021-01-01'::timestamptz + g * interval '1 minute', 1 + g % 2, 1
            from generate_series(1, 40000) g`
})

/** A tmpfs of `size` at a fresh folder (root only), unmounted after the test file. */
async function smallDisk(options: string): Promise<string | undefined> {
  if (!isRoot) return undefined
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-disk-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' })
  } catch {
    return undefined
  }
  after(() => {
    try {
      execFileSync('umount', [dir])
    } catch {
      /* already gone */
    }
  })
  return dir
}

const startServe = (env: Record<string, string>) => startServeScript({ DATABASE_URL: db.url, LOG_LEVEL: 'warn', ...env })

describe('a full disk during a backup', () => {
  test(
    'API: 507 disk_full at once, the server stays up, a queued request is marked failed once, no .tmp; CLI: one line, exit 1',
    { timeout: 120_000 },
    async (t) => {
      const disk = await smallDisk('size=1m')
      if (!disk) {
        console.warn('SKIPPED: cannot mount a tmpfs (not root, or no mount permission), so the disk-full test did not run')
        return t.skip('cannot mount a tmpfs')
      }
      const before = await fingerprints()
      const server = await startServe({ BACKUP_DIR: disk })
      try {
        const answer = await timed(fetch(`${server.base}/tables/employees/backup`, { method: 'POST' }))
        assert.ok(answer.ms < 15_000, `took ${answer.ms} ms`)
        const body = await answer.value.json()
        assert.equal(answer.value.status, 507, JSON.stringify(body))
        assert.equal(body.error.code, 'disk_full')
        assert.match(body.error.message, /^backup of employees failed: the disk holding .* is full \(ENOSPC\)/)
        assert.equal((await fetch(`${server.base}/health`)).status, 200)
        assert.deepEqual(await leftovers(join(databaseFolder(disk, db.name), 'employees')), [])
        assert.deepEqual(
          (await readdir(join(databaseFolder(disk, db.name), 'employees'))).filter((n) => n.endsWith('.avro')),
          [],
        )

        // A queued request (as pg_cron queues them): taken, failed, recorded; the server lives on.
        const [{ ids }] = await sql`select api.request_backup('employees', 'sql') as ids`
        let request: { finished_at: Date | null; error: string | null } | undefined
        for (let i = 0; i < 100 && !request?.finished_at; i++) {
          request = (
            await sql<
              { finished_at: Date | null; error: string | null }[]
            >`select finished_at, error from data.backup_requests where request_id = ${ids[0]}`
          )[0]
          if (!request?.finished_at) await new Promise((r) => setTimeout(r, 100))
        }
        assert.ok(request?.finished_at, 'the queued request was never finished')
        assert.match(request!.error ?? '', /is full \(ENOSPC\)/)
        await new Promise((r) => setTimeout(r, 1500))
        assert.equal(server.child.exitCode, null, `the server exited:\n${server.output()}`)
        assert.equal((await fetch(`${server.base}/health`)).status, 200)
        const [{ pending }] = await sql`select count(*)::int as pending from data.backup_requests where finished_at is null`
        assert.equal(pending, 0)
        assert.deepEqual(await leftovers(join(databaseFolder(disk, db.name), 'employees')), [])
      } finally {
        server.child.kill('SIGTERM')
        await server.exited
      }

      // The CLI: one clear line on stderr, no stack trace, exit 1, nothing left on the disk.
      const cli = await execFileAsync(zx, ['scripts/backup.mjs', 'employees'], {
        cwd: projectRoot,
        env: { ...process.env, DATABASE_URL: db.url, BACKUP_DIR: disk },
      }).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      )
      assert.equal(cli.code, 1)
      assert.match(cli.stderr, /^error: backup of employees failed: the disk holding .* is full \(ENOSPC\); nothing was kept\n$/)
      assert.deepEqual(await leftovers(join(databaseFolder(disk, db.name), 'employees')), [])
      assert.deepEqual(await fingerprints(), before)
    },
  )

  test(
    'a backup folder that cannot be written: EROFS through the API, EACCES from the CLI, one clear message each',
    { timeout: 60_000 },
    async (t) => {
      const disk = await smallDisk('size=1m,ro')
      if (!disk) {
        console.warn('SKIPPED: cannot mount a read-only tmpfs (not root), so the unwritable-folder test did not run')
        return t.skip('cannot mount a tmpfs')
      }
      const { base, close } = await listenApi({ databaseUrl: db.url, backupDir: disk })
      try {
        const res = await fetch(`${base}/tables/jobs/backup`, { method: 'POST' })
        const body = await res.json()
        assert.deepEqual([res.status, body.error.code], [500, 'backup_dir_not_writable'])
        assert.match(body.error.message, /^backup of jobs failed: cannot write in .* \(EROFS\); check BACKUP_DIR/)
        assert.equal((await fetch(`${base}/health`)).status, 200)
      } finally {
        await close()
      }
      // EACCES needs a user the permissions apply to: root passes them all.
      const closed = await mkdtemp(join(tmpdir(), 'hirebase-closed-'))
      await chmod(closed, 0o755)
      const cli = await execFileAsync('runuser', ['-u', 'postgres', '--', zx, 'scripts/backup.mjs', 'jobs'], {
        cwd: projectRoot,
        env: { ...process.env, DATABASE_URL: db.url, BACKUP_DIR: closed, TMPDIR: '/tmp' },
      }).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      )
      assert.equal(cli.code, 1)
      assert.match(cli.stderr, /^error: backup of jobs failed: cannot write in .* \(EACCES\); check BACKUP_DIR and its permissions\n$/)
      assert.deepEqual(await readdir(closed), [])
    },
  )
})

describe('Avro files written by another tool (python3-avro), with no toolkit metadata', () => {
  const hasPythonAvro = (() => {
    try {
      execFileSync(python, ['-c', 'import avro.datafile'])
      return true
    } catch {
      return false
    }
  })()
  const root = join(tmpdir(), `hirebase-avro-faults-${process.pid}`)
  const dir = databaseFolder(root, db.name)
  const skip = (t: { skip: (m: string) => void }) => {
    console.warn(
      'SKIPPED: python3-avro is not installed, so the truncated-file and deflate-bomb tests did not run (apt-get install python3-avro)',
    )
    t.skip('python3-avro is not installed')
  }
  /** employees rows 1..n (blocks of 100 records), or one record with a name of `bomb` bytes. */
  const writeEmployees = async (name: string, rows: number, bomb = 0) => {
    await mkdir(join(dir, 'employees'), { recursive: true })
    const path = join(dir, 'employees', name)
    execFileSync(python, [
      '-c',
      `
import avro.datafile, avro.io, avro.schema, sys
schema = avro.schema.parse('{"type": "record", "name": "employees", "fields": [{"name": "employee_id", "type": "int"},' +
  '{"name": "employee_name", "type": "string"}, {"name": "hiring_date", "type": "string"}, {"name": "department_id", "type": "int"}, {"name": "job_id", "type": "int"}]}')
rows, bomb = int(sys.argv[2]), int(sys.argv[3])
with avro.datafile.DataFileWriter(open(sys.argv[1], 'wb'), avro.io.DatumWriter(), schema, codec='deflate') as w:
    if bomb:
        w.append({"employee_id": 1, "employee_name": "a" * bomb, "hiring_date": "2021-01-01T00:00:00Z", "department_id": 1, "job_id": 1})
    for i in range(1, rows + 1):
        w.append({"employee_id": i, "employee_name": "Python %d" % i, "hiring_date": "2021-01-01T00:00:00Z", "department_id": 1, "job_id": 1})
        if i % 100 == 0:
            w.sync()`,
      path,
      String(rows),
      String(bomb),
    ])
    return path
  }

  test('a file cut inside a block, or before its last sync marker, is refused and changes nothing', async (t) => {
    if (!hasPythonAvro) return skip(t)
    const path = await writeEmployees('cut.avro', 5000)
    const whole = (await stat(path)).size
    const before = await fingerprints()
    // A whole file from the same writer restores (dry run): the reader is not simply strict.
    const ok = await restoreTables(sql, ['employees'], { dir, files: { employees: 'cut.avro' }, dryRun: true })
    assert.equal(ok.tables[0].rows_after, 5000)
    await truncate(path, Math.floor(whole * 0.6))
    await assert.rejects(
      restoreTables(sql, ['employees'], { dir, files: { employees: 'cut.avro' } }),
      /cut\.avro is truncated: block \d+ should hold \d+ bytes/,
    )
    await assert.rejects(verifyBackup(sql, path, 'employees'), /is truncated/)
    const cli = await execFileAsync(zx, ['scripts/backup.mjs', '--verify', path], {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: db.url },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    )
    assert.equal(cli.code, 1)
    assert.match(cli.stderr, /^error: cut\.avro is truncated/)

    const noSync = await writeEmployees('nosync.avro', 5000)
    await truncate(noSync, (await stat(noSync)).size - 16)
    await assert.rejects(
      restoreTables(sql, ['employees'], { dir, files: { employees: 'nosync.avro' } }),
      /nosync\.avro is truncated: block 50 is not followed by its sync marker/,
    )
    assert.deepEqual(await fingerprints(), before)
  })

  test(
    'a deflate bomb: refused under AVRO_MAX_BLOCK_BYTES, the process stays under 300 MB, the API answers 422',
    { timeout: 120_000 },
    async (t) => {
      if (!hasPythonAvro) return skip(t)
      const path = await writeEmployees('bomb.avro', 10, 200_000_000)
      assert.ok((await stat(path)).size < 1_000_000, 'the bomb is small on disk')
      const before = await fingerprints()
      // restore.mjs --dry-run in a process of its own, so its peak RSS is measurable.
      const script = `
      import { restoreTables } from './src/backup/restore.ts'
      import { connect } from './src/database.ts'
      const sql = connect(process.env.DATABASE_URL, { max: 1 })
      const error = await restoreTables(sql, ['employees'], { dir: process.env.DIR, files: { employees: 'bomb.avro' }, dryRun: true }).then(() => null, (e) => e.message)
      await sql.end()
      console.log(JSON.stringify({ error, rss_mb: Math.round(process.resourceUsage().maxRSS / 1024) }))`
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: projectRoot,
        env: { ...process.env, DATABASE_URL: db.url, DIR: dir },
      })
      const child = JSON.parse(stdout.trim().split('\n').at(-1)!)
      assert.match(child.error ?? '', /bomb\.avro is refused: block 1 inflates to more than AVRO_MAX_BLOCK_BYTES \(16777216\) bytes/)
      assert.ok(child.rss_mb < 300, `peak RSS ${child.rss_mb} MB`)

      const { base, close } = await listenApi({ databaseUrl: db.url, backupDir: root })
      try {
        const res = await timed(
          fetch(`${base}/tables/employees/restore`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ file: 'bomb.avro', dry_run: true }),
          }),
        )
        const body = await res.value.json()
        assert.deepEqual([res.value.status, body.error.code], [422, 'bad_backup'])
        assert.match(body.error.message, /AVRO_MAX_BLOCK_BYTES/)
        assert.ok(res.ms < 10_000, `took ${res.ms} ms`)
        assert.equal((await fetch(`${base}/health`)).status, 200)
      } finally {
        await close()
      }
      assert.deepEqual(await fingerprints(), before)
    },
  )
})

describe('a FIFO named *.avro among the backups', () => {
  test('GET /tables/jobs/backups answers at once without it; a restore of it is refused, not stuck', { timeout: 30_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'hirebase-fifo-'))
    const dir = databaseFolder(root, db.name)
    const real = await backupTable(sql, 'jobs', { dir })
    // A name that sorts as the newest toolkit backup.
    execFileSync('mkfifo', [join(dir, 'jobs', '29990101T000000000Z.avro')])
    const { base, close } = await listenApi({ databaseUrl: db.url, backupDir: root })
    try {
      const list = await timed(fetch(`${base}/tables/jobs/backups`))
      assert.equal(list.value.status, 200)
      assert.ok(list.ms < 2000, `took ${list.ms} ms`)
      assert.deepEqual(
        (await list.value.json()).map((b: { file: string }) => b.file),
        [real.file.replace(/^jobs\//, '')],
      )
      const post = (body: object) =>
        timed(
          fetch(`${base}/tables/jobs/restore`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          }),
        )
      const named = await post({ file: '29990101T000000000Z.avro', dry_run: true })
      assert.deepEqual(
        [named.value.status, (await named.value.json()).error.message],
        [422, '29990101T000000000Z.avro is not a regular file'],
      )
      assert.ok(named.ms < 2000, `took ${named.ms} ms`)
      // The newest backup is the real one, not the FIFO.
      const newest = await post({ newest: true, dry_run: true })
      assert.equal(newest.value.status, 200)
      assert.equal((await newest.value.json()).file, real.file)
    } finally {
      await close()
    }
  })
})

describe('clean-up after an interruption', () => {
  test(
    "the next start removes a killed backup's .tmp and a killed restore's snapshot; a committed restore's snapshot stays",
    { timeout: 120_000 },
    async () => {
      const root = await mkdtemp(join(tmpdir(), 'hirebase-interrupted-'))
      const dir = databaseFolder(root, db.name)
      const backup = await backupTable(sql, 'employees', { dir })
      const kept = await restoreTables(sql, ['employees'], { dir, files: { employees: backup.path } })
      const before = await fingerprints()
      await writeFile(join(dir, 'employees', '.20200101T000000000Z.avro.tmp'), 'partial')
      const snapshots = join(dir, 'employees', 'pre-restore')
      const child = spawn(zx, ['scripts/restore.mjs', 'employees', backup.path], {
        cwd: projectRoot,
        env: { ...process.env, DATABASE_URL: db.url, BACKUP_DIR: root },
        stdio: 'ignore',
      })
      const exited = new Promise((resolve) => child.on('exit', resolve))
      // Killed once its snapshot is in place, while the apply step runs.
      let snapshot: string | undefined
      for (let i = 0; i < 3000 && !snapshot && child.exitCode === null; i++) {
        snapshot = (await readdir(snapshots)).find((n) => n.endsWith('.avro') && `employees/pre-restore/${n}` !== kept.tables[0].snapshot)
        if (!snapshot) await new Promise((r) => setTimeout(r, 5))
      }
      child.kill('SIGKILL')
      await exited
      assert.ok(snapshot, 'the restore never wrote its snapshot')
      // The server notices the dead connection and aborts its transaction.
      for (let i = 0; i < 50; i++) {
        const [{ n }] =
          await sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'`
        if (n === 0) break
        await new Promise((r) => setTimeout(r, 100))
      }
      assert.deepEqual(await fingerprints(), before)
      const removed = await cleanBackupFolder(sql, dir)
      assert.deepEqual(removed.sort(), ['employees/.20200101T000000000Z.avro.tmp', `employees/pre-restore/${snapshot}`].sort())
      assert.ok(!existsSync(join(snapshots, `${snapshot}.sha256`)))
      // The committed restore's snapshot and the backup itself stay.
      assert.deepEqual(
        (await listBackups(dir, 'employees')).map((b) => `employees/${b.file}`),
        [backup.file, kept.tables[0].snapshot],
      )
    },
  )

  test("another server's snapshots are kept: the start neither fails on an id in its future nor removes one by a local id", async () => {
    // The embedded default and DATABASE_URL share BACKUP_DIR/hirebase/: a snapshot written on
    // one named a transaction id the other had not reached (txid_status raised 22023 and
    // npm start stopped, its pools left open), or that meant an unrelated local transaction.
    const dir = databaseFolder(await mkdtemp(join(tmpdir(), 'hirebase-servers-')), db.name)
    const aborted = await sql
      .begin(async (tx) => {
        const [{ xid }] = await tx<{ xid: string }[]>`select txid_current()::text as xid`
        throw Object.assign(new Error('roll back'), { xid })
      })
      .catch((err: { xid: string }) => err.xid)
    const [{ here }] = await sql<{ here: string | null }[]>`select runner.server_id() as here`
    const snapshot = async (meta: Record<string, string>) => {
      const file = await sql.begin((tx) => writeBackup(tx, 'jobs', { dir }, PRE_RESTORE, meta))
      await new Promise((r) => setTimeout(r, 5)) // a new timestamp, so a new name
      return file.file
    }
    const future = await snapshot({ restore_xid: '999999999999' })
    const elsewhere = await snapshot({ restore_xid: aborted, restore_server: 'another server' })
    const unnamed = await snapshot({ restore_xid: aborted }) // written before snapshots named their server
    const mine = here ? await snapshot({ restore_xid: aborted, restore_server: here }) : undefined
    const removed = await cleanBackupFolder(sql, dir)
    assert.deepEqual(removed.sort(), [unnamed, ...(mine ? [mine] : [])].sort())
    const left = (await listBackups(dir, 'jobs')).map((b) => `jobs/${b.file}`)
    assert.ok(left.includes(future) && left.includes(elsewhere), `kept: ${left.join(', ')}`)
  })

  test('load.mjs names the files it committed before a later file failed', async () => {
    const fresh = await freshDatabase()
    const dir = await mkdtemp(join(tmpdir(), 'hirebase-partial-load-'))
    await writeFile(join(dir, 'departments.csv'), '1,Engineering\n2,Sales\n')
    await writeFile(join(dir, 'jobs.csv'), '1,"unterminated\n')
    const out = await execFileAsync(zx, ['scripts/load.mjs', dir], {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: fresh.url },
    }).then(
      () => ({ code: 0, stdout: '', stderr: '' }),
      (err: { code: number; stdout: string; stderr: string }) => err,
    )
    assert.equal(out.code, 1)
    assert.match(out.stdout, /departments: 2 rows read, 2 inserted.*\n {2}\(committed\)/)
    assert.match(
      out.stderr,
      /^warning: .* has no employees\.csv: that table is not loaded\nerror: .*jobs\.csv.*\ndepartments\.csv was loaded and committed before this failure; the failed file changed nothing\n$/s,
    )
    const [{ d, j }] = await fresh.sql`select (select count(*) from data.departments)::int as d, (select count(*) from data.jobs)::int as j`
    assert.deepEqual([d, j], [2, 0])
  })
})

after(async () => {
  await rm(join(tmpdir(), `hirebase-avro-faults-${process.pid}`), { recursive: true, force: true })
})
