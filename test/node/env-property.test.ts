// `.env`, property-tested: only the settings of README "Configuration" (SETTINGS) are taken from
// it, never over the real environment nor as an empty value; any other key (NODE_OPTIONS, PATH,
// a typo) is left out and named in one warning. The oracle is that sentence, on generated files
// and environments. `npm test` runs it with a fixed seed; `npm run fuzz` longer.
import assert from 'node:assert/strict'
import { chmod, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import fc from 'fast-check'
import { SETTINGS, loadDotEnv } from '../../src/env.ts'

const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const scale = Number(process.env.FUZZ_SCALE ?? 1)

test('.env sets exactly the documented settings the environment lacks, and names every other key', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hirebase-env-property-'))
  const key = fc.oneof(
    fc.constantFrom(...SETTINGS),
    fc.constantFrom('NODE_OPTIONS', 'PATH', 'LD_PRELOAD', 'HOME', 'DATABASE_URl', 'database_url', 'PORT_'),
    fc.stringMatching(/^[A-Z][A-Z0-9_]{0,11}$/),
  )
  const value = fc.oneof(fc.constant(''), fc.stringMatching(/^[A-Za-z0-9_.:/@-]{1,20}$/))
  let n = 0
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, maxLength: 12 }),
      fc.uniqueArray(fc.tuple(fc.constantFrom(...SETTINGS), fc.stringMatching(/^[a-z0-9]{0,8}$/)), { selector: ([k]) => k, maxLength: 4 }),
      async (lines, environment) => {
        const file = join(dir, `${++n}.env`)
        await writeFile(file, lines.map(([k, v]) => `${k}=${v}\n`).join(''))
        await chmod(file, 0o600)
        const env: NodeJS.ProcessEnv = Object.fromEntries(environment)
        const before = { ...env }
        const warnings: string[] = []
        const set = loadDotEnv(file, env, (m) => warnings.push(m))
        // The oracle.
        const expected = lines.filter(([k, v]) => SETTINGS.has(k) && before[k] === undefined && v !== '')
        const unknown = lines.map(([k]) => k).filter((k) => !SETTINGS.has(k))
        assert.deepEqual(set.sort(), expected.map(([k]) => k).sort())
        assert.deepEqual(env, { ...before, ...Object.fromEntries(expected) })
        const named = warnings.filter((w) => w.includes('not a setting') || w.includes('not settings'))
        if (unknown.length === 0) assert.deepEqual(named, [])
        else {
          assert.equal(named.length, 1, warnings.join('\n'))
          for (const k of unknown) assert.ok(named[0].includes(k), `${k} not named: ${named[0]}`)
        }
      },
    ),
    { seed, numRuns: Math.ceil(300 * scale) },
  )
})
