// npm test cleans up after itself: on SIGINT, and, after a run killed outright, on the next run.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { connect } from '../../src/database.ts'
import { projectRoot } from '../../src/paths.ts'

const serverUrl = process.env.TEST_SERVER_URL!
const admin = connect(serverUrl, { max: 1 })
const runs = async () => {
  const names = (await admin`select datname from pg_database where datname like 'hirebase\_test\_%'`).map((r) => r.datname as string)
  const folders = (await readdir(tmpdir())).filter((n) => n.startsWith('hirebase-test-'))
  return { names, folders }
}
// Without node:test's marker, or the nested runner would refuse to run files inside a test.
const { NODE_TEST_CONTEXT: _, ...env } = process.env
const runOf = (name: string) => /^hirebase_test_(?:template_)?([0-9a-f]{8})(?:_|$)/.exec(name)?.[1]

/** Starts a nested npm test on `fixture`; resolves once its test file holds a database and a folder. */
async function nestedRun(fixture: string) {
  const before = new Set((await runs()).names.map(runOf))
  const child = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/test.mjs', fixture], {
    cwd: projectRoot,
    env: { ...env, DATABASE_URL: serverUrl },
    stdio: 'ignore',
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))))
  let run: string | undefined
  for (let i = 0; i < 600 && !run; i++) {
    const fresh = (await runs()).names.filter((n) => !n.includes('template') && !before.has(runOf(n)))
    run = fresh.map(runOf).find((r) => r && existsSync(join(tmpdir(), `hirebase-test-${r}`, 'holding.pid')))
    if (!run) await new Promise((r) => setTimeout(r, 100))
  }
  assert.ok(run, 'the nested run never started its test file')
  return { child, exited, run: run!, folder: join(tmpdir(), `hirebase-test-${run}`) }
}

const leftOf = async (run: string) => {
  const { names, folders } = await runs()
  return [...names.filter((n) => runOf(n) === run), ...folders.filter((f) => f.endsWith(run))]
}

test('SIGINT during npm test: its databases and temp folders are removed, exit 130', { timeout: 120_000 }, async () => {
  const nested = await nestedRun('test/fixtures/hold.fixture.ts')
  assert.ok((await readdir(nested.folder)).some((n) => n.startsWith('hirebase-browser-')))
  assert.ok((await leftOf(nested.run)).length >= 2)
  const started = Date.now()
  nested.child.kill('SIGINT')
  assert.equal(await nested.exited, 130)
  assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`)
  assert.deepEqual(await leftOf(nested.run), [])
})

test('a run killed outright: the next run removes what it left', { timeout: 120_000 }, async () => {
  const killed = await nestedRun('test/fixtures/hold.fixture.ts')
  const testPid = Number(await readFile(join(killed.folder, 'holding.pid'), 'utf8'))
  killed.child.kill('SIGKILL')
  await killed.exited
  process.kill(-Number((await readFile(`/proc/${testPid}/stat`, 'utf8')).split(' ')[4]), 'SIGKILL') // its test process group
  assert.ok((await leftOf(killed.run)).length >= 2)
  const next = spawn(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/test.mjs', 'test/fixtures/quick.fixture.ts'], {
    cwd: projectRoot,
    env: { ...env, DATABASE_URL: serverUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  next.stdout.on('data', (d) => (output += d))
  next.stderr.on('data', (d) => (output += d))
  assert.equal(await new Promise((resolve) => next.on('exit', resolve)), 0, `the next run failed:\n${output}`)
  assert.deepEqual(await leftOf(killed.run), [])
  await admin.end()
})
