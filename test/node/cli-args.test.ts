// The command line of every script (src/args.ts): --help, unknown options and bad values, all
// refused before any work (DATABASE_URL points nowhere, so work would fail with exit 1), and .env.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { projectRoot } from '../../src/paths.ts'

const zx = join(projectRoot, 'node_modules/.bin/zx')
// Any script that got past its arguments would fail to connect here (exit 1, not 2).
const env = { ...process.env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nowhere' }

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(zx, args, { cwd: projectRoot, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

const scripts = readdirSync(join(projectRoot, 'scripts'))
  .filter((f) => f.endsWith('.mjs') && f !== 'ts.mjs')
  .sort()

test('every entry point is covered here (a new script gets the same checks)', () => {
  for (const script of [
    'backup.mjs',
    'db.mjs',
    'fuzz.mjs',
    'load.mjs',
    'migrate.mjs',
    'replica.mjs',
    'report.mjs',
    'restore.mjs',
    'schedule.mjs',
    'serve.mjs',
    'start.mjs',
    'test.mjs',
  ]) {
    assert.ok(scripts.includes(script), script)
  }
})

test('npm run bench -- --help prints its help instead of running the benchmark; unknown options exit 2', async () => {
  // (It once ran a whole 1M-row benchmark when asked for --help.)
  const help = await cli(['bench/bench.mjs', '--help'])
  assert.equal(help.code, 0, help.stderr)
  assert.match(help.stdout, /^Usage: npm run bench -- \[--rows N\]/)
  const bogus = await cli(['bench/bench.mjs', '--row', '5000'])
  assert.equal(bogus.code, 2)
  assert.match(bogus.stderr, /^error: unknown option --row \(did you mean --rows\?\)/)
  const both = await cli(['bench/bench.mjs', '--replicas', '--rows', '5000'])
  assert.equal(both.code, 2)
  assert.match(both.stderr, /^error: --replicas runs only the read-replica bench: it takes no --rows/)
})

describe('--help, unknown options', { concurrency: 4 }, () => {
  for (const script of scripts) {
    test(`${script} --help prints usage, options, environment and an example, exit 0`, async () => {
      const r = await cli([`scripts/${script}`, '--help'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, new RegExp(`^Usage: npx zx scripts/${script.replace('.', '\\.')}`))
      assert.match(r.stdout, /\nOptions:\n(.*\n)*  -h, --help +print this help/)
      assert.match(r.stdout, /\nEnvironment \(also read from \.env.*\n  DATABASE_URL /)
      assert.match(r.stdout, /\nExamples?:\n  .*(npx zx scripts\/|npm )/)
      assert.equal(r.stderr, '')
    })
    test(`${script} --bogus exits 2 naming it`, async () => {
      const r = await cli([`scripts/${script}`, '--bogus'])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /^error: unknown option --bogus\nUsage: npx zx scripts\//)
      assert.equal(r.stdout, '')
    })
  }
})

describe('bad values and arguments exit 2 naming them', { concurrency: 4 }, () => {
  const cases: [string[], RegExp][] = [
    [['scripts/load.mjs', '--max-rejects', '5x'], /^error: --max-rejects "5x": expected a number of rows .* or a percentage/],
    [['scripts/load.mjs', '--max-rejects', '101%'], /^error: --max-rejects "101%"/],
    [['scripts/load.mjs', '--max-fields', '0'], /^error: --max-fields "0": expected a whole number >= 1/],
    [['scripts/load.mjs', '--max-record-bytes'], /^error: --max-record-bytes needs a value/],
    [['scripts/load.mjs', '--dry-run=yes'], /^error: --dry-run takes no value/],
    [['scripts/load.mjs', 'a', 'b'], /^error: unexpected argument "b" \(at most 1\)/],
    [['scripts/load.mjs', '/nonexistent/folder'], /^error: "\/nonexistent\/folder": no such folder/],
    [['scripts/load.mjs', 'package.json'], /^error: "package.json" is not a folder/],
    [['scripts/load.mjs', 'docs'], /^error: "docs" has no \.csv file to load/],
    [['scripts/replica.mjs', '--port', '70000'], /^error: --port "70000": expected a whole number from 1 to 65535/],
    [['scripts/test.mjs', 'test/node/no-such.test.ts'], /^error: "test\/node\/no-such.test.ts": no such file or folder/],
    [['scripts/load.mjs', '--dry-rn'], /^error: unknown option --dry-rn \(did you mean --dry-run\?\)/],
    [['scripts/report.mjs', '--yaer', '2020'], /^error: unknown option --yaer \(did you mean --year\?\)/],
    [['scripts/report.mjs', '--year', '20x1'], /^error: --year "20x1": expected a year such as 2021/],
    [['scripts/report.mjs', '--year', '--out', 'x'], /^error: --year needs a value/],
    [['scripts/backup.mjs'], /^error: name the tables to back up, or --all/],
    [['scripts/backup.mjs', '--all', 'jobs'], /^error: use one of/],
    [['scripts/backup.mjs', '--table', 'jobs'], /^error: --table goes with --verify/],
    [['scripts/backup.mjs', '--verify', 'no-such.avro'], /^error: "no-such.avro": no such file/],
    [['scripts/restore.mjs'], /^error: name the table to restore, or --all/],
    [['scripts/restore.mjs', '--all', 'jobs'], /^error: --all takes no table/],
    [['scripts/restore.mjs', 'jobs', 'file', 'extra'], /^error: unexpected argument "extra"/],
    [['scripts/schedule.mjs', '--list', '--remove'], /^error: use --list or --remove, not both/],
    [['scripts/migrate.mjs', 'now'], /^error: unexpected argument "now"/],
    [['scripts/serve.mjs', '--port', '80'], /^error: unknown option --port/],
    [['scripts/fuzz.mjs', '--seed', 'abc'], /^error: --seed "abc": expected a whole number >= 0/],
    [['scripts/fuzz.mjs', '--scale', '0'], /^error: --scale "0": expected a whole number >= 1/],
  ]
  for (const [args, message] of cases) {
    test(args.join(' '), async () => {
      const r = await cli(args)
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, message)
      assert.match(r.stderr, /\(npx zx scripts\/\w+\.mjs --help for more\)\n$/)
    })
  }
  test('without bad arguments the same scripts do their work (here: fail to connect, exit 1)', async () => {
    const r = await cli(['scripts/migrate.mjs'])
    assert.equal(r.code, 1, r.stderr)
    assert.doesNotMatch(r.stderr, /Usage:/)
    // ... saying what to check, not only the driver's "connect ECONNREFUSED 127.0.0.1:1"
    assert.match(r.stderr, /^error: connect ECONNREFUSED 127\.0\.0\.1:1\nhint: is PostgreSQL running at DATABASE_URL's host and port\?/)
  })
})

test('npm test -- --help prints the help instead of running the suite', async () => {
  const r = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile('npm', ['test', '--', '--help'], { cwd: projectRoot, env, timeout: 60_000 }, (err, stdout) =>
      resolve({ code: err ? 1 : 0, stdout }),
    )
  })
  assert.equal(r.code, 0)
  assert.match(r.stdout, /Usage: npx zx scripts\/test\.mjs \[test files\.\.\.\]/)
  assert.doesNotMatch(r.stdout, /TAP version/)
})

test('a table the database does not know, named on the command line, is a bad argument: exit 2 with the tables it knows', async () => {
  const { freshDatabase } = await import('../support.ts')
  const db = await freshDatabase()
  for (const args of [
    ['scripts/backup.mjs', 'nosuch'],
    ['scripts/backup.mjs', '--list', 'nosuch'], // it said "no backups of nosuch", exit 0
    ['scripts/restore.mjs', 'nosuch', '--dry-run'],
  ]) {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(zx, args, { cwd: projectRoot, env: { ...process.env, DATABASE_URL: db.url }, timeout: 60_000 }, (err, _stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      )
    })
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, /^error: unknown table "nosuch" \[IBTAB\]\nhint: use one of: departments, jobs, employees\n$/)
  }
})

test('a backup file named on the command line that the folder does not have is a bad argument: exit 2', async () => {
  const { freshDatabase } = await import('../support.ts')
  const { mkdtemp } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const db = await freshDatabase()
  const env = { ...process.env, DATABASE_URL: db.url, BACKUP_DIR: await mkdtemp(join(tmpdir(), 'hirebase-cli-backups-')) }
  const run = (args: string[]) =>
    new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(zx, args, { cwd: projectRoot, env, timeout: 60_000 }, (err, _stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      )
    })
  assert.equal((await run(['scripts/backup.mjs', 'jobs'])).code, 0)
  const r = await run(['scripts/restore.mjs', 'jobs', 'nope.avro', '--dry-run'])
  assert.equal(r.code, 2, r.stderr)
  assert.match(r.stderr, /^error: no such backup file: nope\.avro \(see: npx zx scripts\/backup\.mjs --list jobs\)/)
})

test('an unmigrated database: the error says to migrate (report.mjs and backup.mjs do not migrate first)', async () => {
  const { describeError } = await import('../../src/cli.ts')
  const err = Object.assign(new Error('schema "report" does not exist'), { code: '3F000' })
  assert.equal(
    describeError(err),
    'schema "report" does not exist [3F000]\nhint: the database is not migrated yet: npx zx scripts/migrate.mjs (load.mjs and npm start migrate too)',
  )
})

test('scripts/ts.mjs run by itself says it is no command (exit 2) instead of doing nothing', async () => {
  const r = await cli(['scripts/ts.mjs', '--help'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^error: scripts\/ts\.mjs is what the scripts use to load src\/, not a command/)
})
