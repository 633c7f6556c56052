// Settings from the environment (src/env.ts): unset or empty is the default, a bad value is
// refused naming the variable, and every number setting goes through the same check.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { chmod, chown, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadDotEnv, settingFromEnv, parseWhole, SETTINGS, wholeFromEnv } from '../../src/env.ts'
import { projectRoot } from '../../src/paths.ts'
import { limitsFromEnv } from '../../src/api/limits.ts'
import { fileMode } from '../../src/files.ts'

test('whole numbers: ASCII digits within the range, nothing else', () => {
  assert.equal(parseWhole('7'), 7)
  assert.equal(parseWhole('007'), 7)
  for (const bad of ['0', '-1', '1.5', '1e3', '0x10', '', ' 7', '9007199254740993']) assert.equal(parseWhole(bad), undefined, bad)
  assert.equal(parseWhole('5', 1, 4), undefined)
})

test('a setting: the default when unset or empty, trimmed, and refused naming the variable', () => {
  assert.equal(wholeFromEnv('X_MAX', 3, {}, {}), 3)
  assert.equal(wholeFromEnv('X_MAX', 3, {}, { X_MAX: '' }), 3)
  assert.equal(wholeFromEnv('X_MAX', 3, {}, { X_MAX: ' 12 ' }), 12)
  assert.throws(() => wholeFromEnv('X_MAX', 3, {}, { X_MAX: '0' }), /^Error: X_MAX must be a whole number >= 1, got "0"$/)
  assert.throws(
    () => wholeFromEnv('X_BYTES', 3, { min: 1024, unit: 'bytes' }, { X_BYTES: '10' }),
    /^Error: X_BYTES must be a whole number of bytes >= 1024, got "10"$/,
  )
  assert.throws(
    () => wholeFromEnv('X_DAYS', 3, { max: 9, unit: 'days', note: 'why' }, { X_DAYS: '10' }),
    /^Error: X_DAYS must be a whole number of days from 1 to 9 \(why\), got "10"$/,
  )
  assert.throws(() => settingFromEnv('X_MODE', 1, () => undefined, 'a mode', { X_MODE: 'x' }), /^Error: X_MODE must be a mode, got "x"$/)
})

test('the settings that read numbers use it', () => {
  assert.throws(() => limitsFromEnv({ POOL_SIZE: '1.5' }), /POOL_SIZE must be a whole number >= 1, got "1.5"/)
  assert.equal(limitsFromEnv({ STATEMENT_TIMEOUT_MS: '' }).statementTimeoutMs, 15_000)
  assert.equal(fileMode({ FILE_MODE: '' }), 0o600)
  assert.equal(fileMode({ FILE_MODE: '640' }), 0o640)
  assert.throws(() => fileMode({ FILE_MODE: '0700' }), /FILE_MODE must be an octal file mode .* got "0700"/)
})

// .env (loadDotEnv) sets only the settings README "Configuration" lists: a file that could set
// NODE_OPTIONS, PATH or PGPASSFILE would run code or reach a server in every child the scripts start.
test('.env sets only the documented settings, under the environment; any other key is named as ignored', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-env-'))
  const file = join(dir, '.env')
  await writeFile(
    file,
    '# comment\nLOG_LEVEL=warn\nBACKUP_KEEP="9"\nPORT=from-file\nREPORTS_DIR=\nNODE_OPTIONS=--require=/tmp/x.js\nPATH=/tmp\nFUZZ_SEED=1\n',
  )
  const env: NodeJS.ProcessEnv = { PORT: '8001' }
  const warnings: string[] = []
  assert.deepEqual(loadDotEnv(file, env, (m) => warnings.push(m)).sort(), ['BACKUP_KEEP', 'LOG_LEVEL'])
  assert.deepEqual(env, { PORT: '8001', LOG_LEVEL: 'warn', BACKUP_KEEP: '9' })
  assert.deepEqual(warnings, [`${file}: FUZZ_SEED, NODE_OPTIONS, PATH are not settings of hirebase (README "Configuration"): ignored`])
  assert.deepEqual(
    loadDotEnv(join(dir, 'absent'), env, (m) => warnings.push(m)),
    [],
  )
  assert.equal(warnings.length, 1)
})

test('the settings .env may set are those of README "Configuration"', async () => {
  const readme = await readFile(join(projectRoot, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Configuration\n'), readme.indexOf('\n## ', readme.indexOf('\n## Configuration\n') + 1))
  const documented = section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .flatMap((row) => [...row.split('|')[1].matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]))
  assert.ok(documented.length > 20, 'the Configuration table was not found')
  assert.deepEqual([...SETTINGS].sort(), documented.sort())
})

test('.env.example lists every setting, as the README says', async () => {
  const example = await readFile(join(projectRoot, '.env.example'), 'utf8')
  const listed = [...example.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1])
  assert.deepEqual(listed.sort(), [...SETTINGS].sort())
})

// Another user who can write .env could point DATABASE_URL at a server of theirs (the loader and
// restores would send it the data) or list a page of theirs in ALLOWED_ORIGINS: such a file is
// not read, as folders others can write are refused for backups and reports (src/files.ts).
test('.env that other users can write, or that belongs to another user, is not read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-env-'))
  const file = join(dir, '.env')
  await writeFile(file, 'LOG_LEVEL=debug\n')
  await chmod(file, 0o666)
  const env: NodeJS.ProcessEnv = {}
  const warnings: string[] = []
  assert.deepEqual(
    loadDotEnv(file, env, (m) => warnings.push(m)),
    [],
  )
  assert.deepEqual(env, {})
  assert.match(warnings.join('\n'), /\.env is writable by other users, .*not read/)
  if (process.getuid?.() === 0) {
    await chmod(file, 0o644)
    await chown(file, 65534, 65534)
    warnings.length = 0
    assert.deepEqual(
      loadDotEnv(file, env, (m) => warnings.push(m)),
      [],
    )
    assert.match(warnings.join('\n'), /\.env belongs to another user \(uid 65534\), .*not read/)
  }
  await chmod(file, 0o600)
  await chown(file, process.getuid?.() ?? 0, process.getgid?.() ?? 0).catch(() => {})
  assert.deepEqual(
    loadDotEnv(file, env, () => {}),
    ['LOG_LEVEL'],
  )
})

// `cp .env.example .env` makes it 0644: a password in DATABASE_URL or a token would be every
// local user's to read. Read all the same (the user chose it), with a warning saying what to do.
test('.env that others may read is read, with a warning naming the secrets it holds', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-env-'))
  const file = join(dir, '.env')
  await writeFile(file, 'API_TOKEN=t0ken\nDATABASE_URL=postgres://u:secret@h/d\nLOG_LEVEL=warn\nAPI_DATABASE_URL=postgres://h/d\n')
  await chmod(file, 0o644)
  const warnings: string[] = []
  assert.deepEqual(loadDotEnv(file, {}, (m) => warnings.push(m)).sort(), ['API_DATABASE_URL', 'API_TOKEN', 'DATABASE_URL', 'LOG_LEVEL'])
  assert.deepEqual(warnings, [`${file} holds API_TOKEN, DATABASE_URL and other users may read it: chmod 600 ${file}`])
  await chmod(file, 0o600)
  warnings.length = 0
  loadDotEnv(file, {}, (m) => warnings.push(m))
  assert.deepEqual(warnings, [])
})
