// What may lie in a backup folder besides the toolkit's files: a symlink, a FIFO, a file
// someone else wrote, a file named in the future, another database's backups. None of them
// is listed, restored as "the newest", counted or pruned.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { copyFile, mkdtemp, readdir, realpath, symlink } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { backupDirOf, databaseFolder, listBackups, resolveBackupFile } from '../../src/backup/folders.ts'
import { backupTable } from '../../src/backup/write.ts'
import { restoreTables } from '../../src/backup/restore.ts'
import { freshDatabase, listenApi } from '../support.ts'

const db = await freshDatabase()
const { sql } = db
const root = await mkdtemp(join(tmpdir(), 'hirebase-folders-'))
const dir = await backupDirOf(sql, root)
const folder = join(dir, 'jobs')

const warnings: string[] = []
const onWarning = (w: Error) => warnings.push(w.message)
process.on('warning', onWarning)
after(() => {
  process.off('warning', onWarning)
})

describe('a backup folder with strangers in it', () => {
  test('symlinks, FIFOs, foreign files and future names are never listed, restored as the newest, counted or pruned', async () => {
    await sql`call ingest_batch('jobs', '[{"job_id": 7001, "job_name": "Real"}]')`
    const real = await backupTable(sql, 'jobs', { dir, keep: 2 })
    // Newer-named strangers, each of which "the newest" used to pick.
    const outside = await mkdtemp(join(tmpdir(), 'hirebase-outside-'))
    await copyFile(real.path, join(outside, 'elsewhere.avro'))
    await symlink(join(outside, 'elsewhere.avro'), join(folder, '20990101T000000000Z.avro'))
    execFileSync('mkfifo', [join(folder, '20990101T000000001Z.avro')])
    const future = '29991231T235959999Z.avro'
    await copyFile(real.path, join(folder, future))
    await copyFile(real.path, join(folder, '000-manual-export.avro'))
    await copyFile(real.path, join(folder, 'zzz-latest.avro'))

    const listed = (await listBackups(dir, 'jobs')).map((b) => b.file)
    assert.deepEqual(listed, [real.file.replace(/^jobs\//, '')])
    assert.ok(
      warnings.some((w) => w.includes(future) && /future/.test(w)),
      warnings.join('\n'),
    )
    assert.equal(await resolveBackupFile(dir, 'jobs'), join(await realpath(dir), real.file))

    // Named explicitly, a symlink (even to a backup inside the folder) or a FIFO is refused
    // (a FIFO would hang the reading).
    await symlink(real.path, join(folder, 'inside-link.avro'))
    for (const name of ['20990101T000000000Z.avro', '20990101T000000001Z.avro', 'inside-link.avro']) {
      await assert.rejects(
        restoreTables(sql, ['jobs'], { dir, files: { jobs: name } }),
        /not a regular file|outside the backup folder/,
        name,
      )
    }

    // Pruning to 2 counts and removes only the toolkit's own files.
    for (let i = 0; i < 3; i++) await backupTable(sql, 'jobs', { dir, keep: 2 })
    const left = (await readdir(folder)).filter((n) => n.endsWith('.avro')).sort()
    const ours = left.filter((n) => /^\d{8}T\d{9}Z\.avro$/.test(n) && n < '2099')
    assert.equal(ours.length, 2, left.join(', '))
    for (const stranger of ['000-manual-export.avro', 'zzz-latest.avro', future, '20990101T000000000Z.avro', '20990101T000000001Z.avro']) {
      assert.ok(left.includes(stranger), `${stranger} was pruned`)
    }
    // The restore of the newest reads the toolkit's newest backup.
    const restored = await restoreTables(sql, ['jobs'], { dir, dryRun: true })
    assert.equal(restored.tables[0].file, join('jobs', ours.at(-1)!))
  })

  test("the API's file is a name in the table's folder: a same-named file in the server's working folder is not looked at, and no message shows a path", async () => {
    const name = '20300101T000000000Z.avro'
    const work = await mkdtemp(join(tmpdir(), 'hirebase-cwd-'))
    await copyFile('/etc/hostname', join(work, name))
    const cwd = process.cwd()
    process.chdir(work)
    try {
      // The command line takes a path from the working folder (refused: outside the folder).
      await assert.rejects(resolveBackupFile(dir, 'jobs', name), /is outside the backup folder \//)
      // The API's name is looked up in the table's folder only.
      await assert.rejects(resolveBackupFile(dir, 'jobs', name, true), (e: Error) => {
        assert.equal(e.message, `no such backup file: ${name} (see: npx zx scripts/backup.mjs --list jobs)`)
        return true
      })
      await assert.rejects(resolveBackupFile(join(root, 'none'), 'jobs', undefined, true), (e: Error) => {
        assert.doesNotMatch(e.message, new RegExp(root))
        return true
      })
    } finally {
      process.chdir(cwd)
    }
  })

  test("two databases sharing BACKUP_DIR never see each other's backups", async () => {
    const other = await freshDatabase()
    await other.sql`call ingest_batch('jobs', '[{"job_id": 7100, "job_name": "Only in the other database"}]')`
    const shared = await mkdtemp(join(tmpdir(), 'hirebase-shared-'))
    const servers = await Promise.all([db, other].map(async (d) => (await listenApi({ databaseUrl: d.url, backupDir: shared })).base))
    const post = (base: string, path: string, body?: unknown) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
      })
    assert.equal((await post(servers[1], '/tables/jobs/backup')).status, 201)
    assert.ok(existsSync(join(databaseFolder(shared, other.name), 'jobs')))
    // This database has no backup of its own: the other's newest is not its newest.
    const refused = await post(servers[0], '/tables/jobs/restore', { newest: true })
    assert.equal(refused.status, 404)
    assert.deepEqual(await (await fetch(`${servers[0]}/tables/jobs/backups`)).json(), [])
    assert.equal((await sql`select count(*)::int as n from data.jobs where job_id = 7100`)[0].n, 0)
    // Each database's folder name is its own, whatever characters it has.
    assert.equal(databaseFolder('/b', 'a/../../etc'), join('/b', 'a%2F%2E%2E%2F%2E%2E%2Fetc'))
    assert.equal(databaseFolder('/b', '..'), join('/b', '%2E%2E'))
  })
})
