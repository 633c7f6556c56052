#!/usr/bin/env zx
// @ts-check
// npm test [-- test/sql/x.test.ts ...]: the tests against a real PostgreSQL (--help).
// Migrates a template database once; every test file clones its own from it.
// Everything a run makes is named after it (databases hirebase_test_<run>_*, temp folders
// under /tmp/hirebase-test-<run>/) and removed at its end, on SIGINT/SIGTERM, and, should
// the run have been killed outright, by the next run: a live run holds an advisory lock on
// its server (for its databases) and its process id is in its folder (runs against other
// servers share /tmp).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { lib } from './ts.mjs'

const { existingPath, parseCommandLine } = await lib('args.ts')
const { wholeFromEnv } = await lib('env.ts')
const { positionals } = parseCommandLine(import.meta.url, {
  usage: ['[test files...]'],
  summary:
    'Runs the tests (all of test/, or the files named) against a real PostgreSQL: DATABASE_URL when set\n' +
    '(its user needs CREATEDB; pg_cron for the schedule tests), otherwise the embedded one. npm test -- [files]\n' +
    'runs this. Each test file gets its own database, cloned from a template migrated once.',
  options: {},
  positionals: { max: Infinity },
  environment: [['TEST_CONCURRENCY', 'test files run at once (default 4)']],
  examples: ['npm test', 'npm test -- test/sql/ingest_batch.test.ts test/node/load.test.ts'],
  // Before the template database is made: a mistyped path is said at once.
  validate: (_values, files) => files.forEach((file) => existingPath(file, 'file or folder')),
})

/** @type {number} */
let concurrency
try {
  concurrency = wholeFromEnv('TEST_CONCURRENCY', 4)
} catch (err) {
  console.error(/** @type {Error} */ (err).message)
  process.exit(2)
}

const { run } = await lib('cli.ts')
const { connect, dropDatabasesAndRoles, withDatabase } = await lib('database.ts')
const { migrate } = await lib('migrate.ts')
const { projectRoot } = await lib('paths.ts')

/** @typedef {import('../src/database.ts').Sql} Sql */

/**
 * The test files under `dir` (Node 20's --test takes paths, not globs).
 * @param {string} dir
 * @returns {Promise<string[]>}
 */
async function testFiles(dir) {
  /** @type {string[]} */
  const found = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) found.push(...(await testFiles(path)))
    else if (entry.name.endsWith('.test.ts')) found.push(relative(projectRoot, path))
  }
  return found.sort()
}

const RUN_LOCK = 'hirebase.test'
/** @param {string} runId */
const tempRoot = (runId) => join(tmpdir(), `hirebase-test-${runId}`)
/** @param {string} name */
const runOf = (name) => /^hirebase_test_(?:template_)?([0-9a-f]{8})(?:_|$)/.exec(name)?.[1]

/** @param {number} pid */
const alive = (pid) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return /** @type {NodeJS.ErrnoException} */ (err).code === 'EPERM'
  }
}

/**
 * Drops the databases of runs whose lock is free, and the folders of runs whose process is gone.
 * @param {Sql} admin
 */
async function removeDeadRuns(admin) {
  const names = (await admin`select datname from pg_database where datname like 'hirebase\_test\_%'`).map((r) => r.datname)
  const runs = names.map(runOf).filter(/** @returns {id is string} */ (id) => id !== undefined)
  for (const runId of new Set(runs)) {
    const [{ free }] = await admin`select pg_try_advisory_lock(hashtext(${RUN_LOCK}), hashtext(${runId})) as free`
    if (!free) continue
    try {
      await dropDatabases(admin, runId)
    } finally {
      await admin`select pg_advisory_unlock(hashtext(${RUN_LOCK}), hashtext(${runId}))`
    }
  }
  for (const folder of (await readdir(tmpdir()).catch(() => [])).filter((n) => /^hirebase-test-[0-9a-f]{8}$/.test(n))) {
    const pid = Number(await readFile(join(tmpdir(), folder, 'run.pid'), 'utf8').catch(() => '0'))
    // A folder without its pid file is being made (or from a run killed at that instant): left.
    if (pid > 0 && !alive(pid)) await rm(join(tmpdir(), folder), { recursive: true, force: true })
  }
}

/**
 * @param {Sql} admin
 * @param {string} runId
 */
async function dropDatabases(admin, runId) {
  const names = (await admin`select datname from pg_database where datname like 'hirebase\_test\_%'`)
    .map((r) => r.datname)
    .filter((n) => runOf(n) === runId)
  // With their API roles: tests leave no role behind.
  await dropDatabasesAndRoles(admin, names)
}

/**
 * @param {Sql} admin
 * @param {string} runId
 */
async function removeRun(admin, runId) {
  await dropDatabases(admin, runId)
  await rm(tempRoot(runId), { recursive: true, force: true })
}

await run(async ({ url }, shutdown) => {
  const runId = randomBytes(4).toString('hex')
  const template = `hirebase_test_template_${runId}`
  const templateUrl = withDatabase(url, template)
  const admin = connect(url, { max: 1 })
  const temp = tempRoot(runId)
  try {
    await admin`select pg_advisory_lock(hashtext(${RUN_LOCK}), hashtext(${runId}))`
    await removeDeadRuns(admin)
    await admin.unsafe(`create database ${template}`).catch((err) => {
      if (err.code !== '42501') throw err
      throw Object.assign(
        new Error(
          `npm test creates and drops its own databases, and the user of DATABASE_URL may not create one: ` +
            `grant it CREATEDB (ALTER ROLE ... CREATEDB), or point DATABASE_URL at a test server`,
        ),
        { code: err.code },
      )
    })
    await migrate(templateUrl)
    // Traversable (not listable) by others: as root, an embedded server runs as `postgres`.
    await mkdir(temp, { mode: 0o711 })
    await chmod(temp, 0o711)
    await writeFile(join(temp, 'run.pid'), String(process.pid))
    const files = positionals.length ? positionals : await testFiles(join(projectRoot, 'test'))
    if (shutdown.aborted) return
    const code = await new Promise((resolve) => {
      // A process group of its own, so a signal reaches every test file's process.
      // Test files wait on PostgreSQL, servers and timers far more than they compute: several at
      // once (each has its own database) instead of node's default of one per core less one.
      const child = spawn(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files], {
        cwd: projectRoot,
        stdio: 'inherit',
        detached: true,
        // Tests drive the API far faster than any client should (app.inject in loops): the
        // per-client rate limit is out of their way unless set; test/node/bounds.test.ts sets its own.
        env: { RATE_LIMIT_MAX: '100000000', ...process.env, TEST_SERVER_URL: url, TEST_TEMPLATE: template, TEST_RUN: runId, TMPDIR: temp },
      })
      const stop = () => {
        const group = -(child.pid ?? 0)
        if (!group) return
        try {
          process.kill(group, 'SIGTERM')
        } catch {}
        setTimeout(() => {
          try {
            process.kill(group, 'SIGKILL')
          } catch {}
        }, 5000).unref()
      }
      shutdown.addEventListener('abort', stop, { once: true })
      child.on('exit', (status) => resolve(shutdown.aborted ? 130 : (status ?? 1)))
    })
    process.exitCode = code
  } finally {
    await removeRun(admin, runId).catch((err) => process.stderr.write(`could not remove this run's databases: ${err.message}\n`))
    await admin.end()
  }
})
