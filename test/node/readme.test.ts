// The README as a smoke test. Every fenced block whose info string is `sh smoke` runs, in
// README order, with bash (`set -euo pipefail`, curl failing on HTTP errors) against one fresh
// database, and must succeed; `localhost:8000` is pointed at an API server (scripts/serve.mjs)
// this test starts. Also: the README lists every entry point and every environment variable
// the code reads, and nothing more.
import assert from 'node:assert/strict'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { projectRoot } from '../../src/paths.ts'
import { freePort, freshDatabase, startServeScript } from '../support.ts'

const readme = await readFile(join(projectRoot, 'README.md'), 'utf8')

interface Block {
  line: number
  info: string
  code: string
}

/** The fenced code blocks of a Markdown text, with the line each opens on. */
export function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = []
  let open: { line: number; fence: string; info: string; lines: string[] } | undefined
  markdown.split('\n').forEach((text, i) => {
    const fence = /^(`{3,}|~{3,})\s*(.*)$/.exec(text)
    if (open) {
      if (fence && fence[1].startsWith(open.fence) && fence[2] === '') {
        blocks.push({ line: open.line, info: open.info, code: open.lines.join('\n') })
        open = undefined
      } else open.lines.push(text)
    } else if (fence) open = { line: i + 1, fence: fence[1], info: fence[2].trim(), lines: [] }
  })
  return blocks
}

/** The blocks marked to run: info string `sh smoke` (or `bash smoke`). */
export const smokeBlocks = (markdown: string) => fencedBlocks(markdown).filter((b) => /^(sh|bash)\s+smoke$/.test(b.info))

/** Runs one block; rejects with the README line, exit code and output when it fails. */
function runBlock(block: Block, env: NodeJS.ProcessEnv, apiPort?: number): Promise<string> {
  const code = apiPort ? block.code.replaceAll('localhost:8000', `localhost:${apiPort}`) : block.code
  // curl as a user reads its answer, but an HTTP error fails the block. `npx zx` is the zx that
  // npx would find, called directly (npm's own start-up, a second each, adds nothing to check).
  const script =
    'set -euo pipefail\ncurl() { command curl --fail-with-body -sS "$@"; echo; }\n' +
    `npx() { if [ "$1" = zx ]; then shift; ${JSON.stringify(join(projectRoot, 'node_modules/.bin/zx'))} "$@"; else command npx "$@"; fi; }\n${code}\n`
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd: projectRoot, env })
    let output = ''
    child.stdout.on('data', (d) => {
      output += d
    })
    child.stderr.on('data', (d) => {
      output += d
    })
    child.on('exit', (status, signal) =>
      status === 0
        ? resolve(output)
        : reject(
            new Error(
              `README.md line ${block.line} (\`\`\`${block.info}) failed with ${signal ?? `exit ${status}`}:\n${block.code}\n--- output ---\n${output}`,
            ),
          ),
    )
  })
}

async function startApi(env: NodeJS.ProcessEnv) {
  const server = await startServeScript(env)
  return { stop: async () => assert.equal(await server.stop(), 0, server.output()) }
}

const hasPsql = spawnSync('psql', ['--version']).status === 0

test('README: the smoke blocks run, in order, against a fresh database', { timeout: 900_000 }, async (t) => {
  const blocks = smokeBlocks(readme)
  // The convention itself is documented, and the blocks are there to run.
  assert.match(readme, /```sh smoke/)
  assert.ok(blocks.length >= 6, `only ${blocks.length} blocks marked \`sh smoke\` in README.md`)
  const db = await freshDatabase()
  const work = await mkdtemp(join(tmpdir(), 'hirebase-readme-'))
  const port = await freePort()
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: db.url,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    BACKUP_DIR: join(work, 'backups'),
    REPORTS_DIR: join(work, 'reports'),
  }
  // The README's commands assume no token is set (empty: unset, and .env cannot set it either).
  for (const name of ['API_TOKEN', 'READ_TOKEN', 'API_TOKEN_READS', 'API_DATABASE_URL']) env[name] = ''
  let api: Awaited<ReturnType<typeof startApi>> | undefined
  try {
    for (const block of blocks) {
      const first = block.code.split('\n').find((l) => l.trim() && !l.startsWith('#')) ?? ''
      await t.test(`README.md line ${block.line}: ${first.slice(0, 80)}`, async (st) => {
        if (/\bpsql\b/.test(block.code) && !hasPsql)
          return st.skip('SKIPPED LOUDLY: psql is not installed here, so this README block was not run')
        if (block.code.includes('localhost:8000')) api ??= await startApi(env)
        await runBlock(block, env, port)
      })
    }
  } finally {
    await api?.stop()
  }
})

test('the smoke runner fails when a README command breaks', async () => {
  const env = { ...process.env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/nothing' }
  const blocks = smokeBlocks(
    'text\n\n```sh smoke\ntrue\nfalse\ntrue\n```\n\n```sh\nnot marked\n```\n\n```sh smoke\nnpx zx scripts/no-such-script.mjs\n```\n',
  )
  assert.deepEqual(
    blocks.map((b) => b.line),
    [3, 13],
  )
  await assert.rejects(runBlock(blocks[0], env), /README.md line 3 .* exit 1/)
  await assert.rejects(runBlock(blocks[1], env), /README.md line 13 .* exit [1-9]/)
  // curl fails on an HTTP error, as a command whose answer is an error should.
  const port = await freePort()
  const server = createServer((socket) => socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}')).listen(
    port,
    '127.0.0.1',
  )
  try {
    await assert.rejects(runBlock({ line: 1, info: 'sh smoke', code: 'curl localhost:8000/nothing' }, env, port), /exit 22/)
  } finally {
    server.close()
  }
})

test('Troubleshooting: an API port in use ends serve.mjs with the error and exit 1', { timeout: 120_000 }, async () => {
  const db = await freshDatabase()
  const blocker = createServer()
  const port = await new Promise<number>((resolve) =>
    blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)),
  )
  try {
    const env = { ...process.env, DATABASE_URL: db.url, HOST: '127.0.0.1', PORT: String(port) }
    const failed = await promisify(execFile)(join(projectRoot, 'node_modules/.bin/zx'), ['scripts/serve.mjs'], {
      cwd: projectRoot,
      env,
      timeout: 60_000,
    }).then(
      () => null,
      (err: Error & { code?: number; killed?: boolean; stderr?: string }) => err,
    )
    assert.ok(failed, 'serve.mjs served on a port in use')
    // (killed: it hung after failing to listen, until the timeout's SIGTERM, which it answers with exit 1 too)
    assert.equal(failed.killed, false, 'serve.mjs did not exit after failing to listen')
    assert.equal(failed.code, 1)
    assert.match(failed.stderr ?? '', new RegExp(`error: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${port}`))
  } finally {
    blocker.close()
  }
})

/** A section of the README: from its `## title` to the next `## `. */
const section = (title: string) => {
  const start = readme.indexOf(`\n## ${title}\n`)
  assert.ok(start >= 0, `README.md has no "## ${title}" section`)
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
}

test('README: every entry point is in Commands', async () => {
  const commands = section('Commands')
  const { scripts } = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  const viaNpm = new Map(
    Object.entries(scripts).flatMap(([name, line]) => {
      const file = /\bzx ((?:scripts|bench)\/[\w-]+\.mjs)/.exec(line)?.[1]
      return file ? [[file, ['start', 'test'].includes(name) ? `npm ${name}` : `npm run ${name}`]] : []
    }),
  )
  const entryPoints = (await readdir(join(projectRoot, 'scripts')))
    .filter((f) => f.endsWith('.mjs') && f !== 'ts.mjs')
    .map((f) => `scripts/${f}`)
  for (const file of [...entryPoints, ...[...viaNpm.keys()].filter((f) => f.startsWith('bench/'))]) {
    const how = viaNpm.get(file) ?? `npx zx ${file}`
    assert.ok(commands.includes(`\`${how}`), `README.md's Commands section does not show \`${how}\``)
  }
  for (const name of Object.keys(scripts)) {
    assert.ok(
      commands.includes(['start', 'test'].includes(name) ? `\`npm ${name}` : `\`npm run ${name}`),
      `README.md's Commands section does not show npm script "${name}"`,
    )
  }
})

test('README: Commands shows every option of every script, as its --help lists them', { timeout: 300_000 }, async () => {
  const commands = section('Commands')
    .split('\n')
    .filter((l) => l.startsWith('| `'))
  const { scripts } = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  const entryPoints = (await readdir(join(projectRoot, 'scripts'))).filter((f) => f.endsWith('.mjs') && f !== 'ts.mjs')
  // Three at a time: a cold start compiles src/ with tsx, slow on a busy machine.
  const helps: (readonly [string, string])[] = []
  for (let i = 0; i < entryPoints.length; i += 3) {
    helps.push(
      ...(await Promise.all(
        entryPoints.slice(i, i + 3).map(async (file) => {
          const { stdout } = await promisify(execFile)(join(projectRoot, 'node_modules/.bin/zx'), [`scripts/${file}`, '--help'], {
            cwd: projectRoot,
            timeout: 120_000,
          })
          return [file, stdout] as const
        }),
      )),
    )
  }
  for (const [file, help] of helps) {
    const npm = Object.entries(scripts).find(([, line]) => line.includes(`scripts/${file}`))?.[0]
    const names = [`scripts/${file}`, ...(npm ? [['start', 'test'].includes(npm) ? `npm ${npm}` : `npm run ${npm}`] : [])]
    const rows = commands.filter((row) => names.some((n) => row.split('|')[1].includes(n))).join('\n')
    assert.ok(rows, `no row for ${names.join(' or ')} in README.md's Commands`)
    const options = [...help.slice(help.indexOf('Options:')).matchAll(/^\s+(?:-\w, )?(--[\w-]+)/gm)]
      .map((m) => m[1])
      .filter((o) => o !== '--help')
    for (const option of options)
      assert.ok(rows.includes(option), `${names.join(' / ')}: option ${option} (in its --help) is not in README.md's Commands`)
  }
})

/** Environment variables the code reads: process.env.X, env.X, xFromEnv('X'), cronFrom(env, 'X'), ['X', <default>]. */
async function variablesRead(): Promise<Map<string, string>> {
  const found = new Map<string, string>()
  const files = [
    ...(await readdir(join(projectRoot, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts')).map((f) => `src/${f}`),
    ...(await readdir(join(projectRoot, 'scripts'))).filter((f) => f.endsWith('.mjs')).map((f) => `scripts/${f}`),
  ]
  const patterns = [
    /\benv(?:\.|\[['"])([A-Z][A-Z0-9_]*)/g,
    /\w(?:FromEnv|From)\(\s*(?:env,\s*)?['"]([A-Z][A-Z0-9_]*)['"]/g,
    /\[\s*['"]([A-Z][A-Z0-9_]*)['"],\s*[0-9]/g,
  ]
  for (const file of files) {
    const text = await readFile(join(projectRoot, file), 'utf8')
    for (const pattern of patterns) for (const m of text.matchAll(pattern)) if (!found.has(m[1])) found.set(m[1], file)
  }
  return found
}

// Read by the code but not configuration: the system's, and what npm test and npm run fuzz hand their children.
const NOT_CONFIGURATION = new Set(['TMPDIR', 'TEST_SERVER_URL', 'TEST_TEMPLATE', 'TEST_RUN', 'FUZZ_SEED', 'FUZZ_SCALE', 'FUZZ_TIME_LIMIT'])

test('README: Configuration lists every environment variable the code reads, and only those', async () => {
  const read = await variablesRead()
  assert.ok(
    read.has('DATABASE_URL') && read.has('STATEMENT_TIMEOUT_MS') && read.has('SCHEDULE_BACKUP'),
    `the scan found too little: ${[...read.keys()]}`,
  )
  const table = section('Configuration')
    .split('\n')
    .filter((l) => l.startsWith('| `'))
  const documented = new Set(table.flatMap((row) => [...row.split('|')[1].matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1])))
  const missing = [...read].filter(([name]) => !documented.has(name) && !NOT_CONFIGURATION.has(name))
  assert.deepEqual(
    missing.map(([name, file]) => `${name} (read in ${file})`),
    [],
    "read by the code but not in README.md's Configuration table",
  )
  assert.deepEqual(
    [...documented].filter((name) => !read.has(name)),
    [],
    "in README.md's Configuration table but read nowhere in src/ or scripts/",
  )
})
