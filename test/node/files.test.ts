// Files on disk: backups, snapshots and reports are 0600 in 0700 folders (FILE_MODE relaxes it),
// written through O_EXCL temporary files that never follow a symlink, and a report folder that
// others can write is refused unless --force.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { backupTable } from '../../src/backup/write.ts'
import { restoreTables } from '../../src/backup/restore.ts'
import { loadDirectory } from '../../src/load.ts'
import { projectRoot } from '../../src/paths.ts'
import { writeReports } from '../../src/report/write.ts'
import { SAMPLE_DIR } from '../../src/tasks.ts'
import { freshDatabase } from '../support.ts'

const db = await freshDatabase()
await loadDirectory(db.sql, SAMPLE_DIR)
const mode = async (path: string) => (await stat(path)).mode & 0o777
const run = promisify(execFile)

test('reports: a new folder is 0700 and every file 0600', async () => {
  const out = join(await mkdtemp(join(tmpdir(), 'hirebase-files-')), 'reports', 'nested')
  const { files } = await writeReports(db.sql, { years: [2021], out, database: 'test' })
  assert.equal(await mode(out), 0o700)
  assert.equal(await mode(join(out, '..')), 0o700)
  for (const file of files) assert.equal(await mode(file), 0o600, file)
  assert.deepEqual(
    (await readdir(out)).filter((n) => n.endsWith('.tmp')),
    [],
  )
})

test('FILE_MODE=0644 relaxes files to 0644 and new folders to 0755; a bad FILE_MODE is a clear error', async () => {
  const out = join(await mkdtemp(join(tmpdir(), 'hirebase-files-')), 'shared')
  process.env.FILE_MODE = '0644'
  try {
    const { files } = await writeReports(db.sql, { years: [2021], out, database: 'test' })
    assert.equal(await mode(out), 0o755)
    for (const file of files) assert.equal(await mode(file), 0o644)
    process.env.FILE_MODE = '0777'
    await assert.rejects(
      writeReports(db.sql, { years: [2021], out, database: 'test' }),
      /FILE_MODE must be an octal file mode .* got "0777"/,
    )
  } finally {
    delete process.env.FILE_MODE
  }
})

test("a symlink planted at a report's name is replaced, never written through", async () => {
  const out = await mkdtemp(join(tmpdir(), 'hirebase-files-'))
  const victim = join(await mkdtemp(join(tmpdir(), 'hirebase-victim-')), 'secret')
  await writeFile(victim, 'root only', { mode: 0o600 })
  await symlink(victim, join(out, 'index.html'))
  await symlink(victim, join(out, 'index.html.tmp')) // the old fixed temporary name
  await writeReports(db.sql, { years: [2021], out, database: 'test' })
  assert.equal(await readFile(victim, 'utf8'), 'root only')
  assert.ok((await lstat(join(out, 'index.html'))).isFile())
  assert.match(await readFile(join(out, 'index.html'), 'utf8'), /hirebase reports/)
})

test('report.mjs --out refuses a folder other users can write, unless --force', async () => {
  const out = await mkdtemp(join(tmpdir(), 'hirebase-files-'))
  await chmod(out, 0o1777)
  const env = { ...process.env, DATABASE_URL: db.url }
  const zx = join(projectRoot, 'node_modules/.bin/zx')
  const refused = await run(zx, ['scripts/report.mjs', '--out', out], { cwd: projectRoot, env }).then(
    () => null,
    (e) => e,
  )
  assert.equal(refused?.code, 1)
  assert.match(refused.stderr, /refused: .* is writable by other users.* --force/)
  assert.deepEqual(await readdir(out), [])
  await run(zx, ['scripts/report.mjs', '--out', out, '--force'], { cwd: projectRoot, env })
  assert.equal(await mode(join(out, 'index.html')), 0o600)
})

test('backups, their .sha256 and pre-restore snapshots: 0600 in 0700 folders; a planted temporary file is refused, not followed', async () => {
  const dir = join(await mkdtemp(join(tmpdir(), 'hirebase-files-')), 'backups')
  const backup = await backupTable(db.sql, 'jobs', { dir })
  assert.equal(await mode(dir), 0o700)
  assert.equal(await mode(join(dir, 'jobs')), 0o700)
  assert.equal(await mode(backup.path), 0o600)
  assert.equal(await mode(`${backup.path}.sha256`), 0o600)
  const restored = await restoreTables(db.sql, ['jobs'], { dir, files: { jobs: backup.path } })
  const snapshot = join(dir, restored.tables[0].snapshot!)
  assert.equal(await mode(join(dir, 'jobs', 'pre-restore')), 0o700)
  assert.equal(await mode(snapshot), 0o600)

  // A folder others can write is refused for backups too.
  const open = join(await mkdtemp(join(tmpdir(), 'hirebase-files-')), 'open')
  await mkdir(join(open, 'jobs'), { recursive: true })
  await chmod(join(open, 'jobs'), 0o777)
  await assert.rejects(backupTable(db.sql, 'jobs', { dir: open }), /refused: .*jobs is writable by other users/)
})

test('an output folder that belongs to another user is refused unless --force', async (t) => {
  if (process.getuid?.() !== 0) {
    console.warn('SKIPPED: giving a folder to another user needs root (CI runs as root)')
    return t.skip('needs root')
  }
  const out = join(await mkdtemp(join(tmpdir(), 'hirebase-files-')), 'theirs')
  await mkdir(out, { mode: 0o755 })
  await chown(out, 54321, 54321) // any uid but ours: the folder's owner could swap what we write
  await assert.rejects(
    writeReports(db.sql, { years: [2021], out, database: 'test' }),
    /refused: .*theirs belongs to another user \(uid 54321\)/,
  )
  assert.deepEqual(await readdir(out), [])
  await writeReports(db.sql, { years: [2021], out, database: 'test', force: true })
  assert.equal(await mode(join(out, 'index.html')), 0o600)
})
