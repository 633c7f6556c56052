#!/usr/bin/env zx
// Usage: npm test [-- test/sql/x.test.ts ...] — runs the tests against a real PostgreSQL:
// DATABASE_URL when set (its user needs CREATEDB), otherwise the embedded one.
// Migrates a template database once; every test file clones its own from it.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { lib } from './ts.mjs'

const { run } = await lib('cli.ts')
const { connect } = await lib('database.ts')
const { migrate } = await lib('migrate.ts')
const { projectRoot } = await lib('paths.ts')

// Node 20's --test takes paths, not globs.
async function testFiles(dir) {
  const found = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) found.push(...(await testFiles(path)))
    else if (entry.name.endsWith('.test.ts')) found.push(relative(projectRoot, path))
  }
  return found.sort()
}

await run(async ({ url }) => {
  const template = `hirebase_test_template_${randomBytes(4).toString('hex')}`
  const templateUrl = Object.assign(new URL(url), { pathname: `/${template}` }).toString()
  const admin = connect(url, { max: 1 })
  let created = false
  try {
    await admin.unsafe(`create database ${template}`).catch((err) => {
      if (err.code !== '42501') throw err
      throw Object.assign(new Error(`npm test creates and drops its own databases, and the user of DATABASE_URL may not create one: ` +
        `grant it CREATEDB (ALTER ROLE ... CREATEDB), or point DATABASE_URL at a test server`), { code: err.code })
    })
    created = true
    await migrate(templateUrl)
    const files = argv._.length ? argv._.map(String) : await testFiles(join(projectRoot, 'test'))
    const code = await new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--test', ...files], {
        cwd: projectRoot,
        stdio: 'inherit',
        env: { ...process.env, TEST_SERVER_URL: url, TEST_TEMPLATE: template },
      })
      child.on('exit', (status) => resolve(status ?? 1))
    })
    process.exitCode = code
  } finally {
    if (created) await admin.unsafe(`drop database if exists ${template} with (force)`)
    await admin.end()
  }
})
