// The reason codes a rejected row can get are written in three places: the functions that
// emit them, data.reason_codes (served by GET /data-dictionary) and the README's table. Each
// code emitted must be in both lists, and each code listed must be one the functions emit.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { projectRoot } from '../../src/paths.ts'
import { freshDatabase } from '../support.ts'

const { sql } = await freshDatabase()

/** A code per field (missing:employee_id) as the lists write it: missing:<field>. */
const general = (code: string) => code.replace(/:.*$/, ':<field>')

/**
 * The codes in the bodies of the toolkit's functions, as installed (pg_get_functiondef also
 * shows SQL-standard bodies, deparsed), in the three forms the rules use: a code per field
 * built as 'missing:' || field, a code in a one-element array (array['duplicate_id'], also
 * inside a generated statement, quotes doubled), and the staging's v_reason := 'unreadable'.
 */
async function emittedCodes(): Promise<Map<string, string[]>> {
  const bodies = await sql<{ fn: string; body: string }[]>`
    select p.oid::regprocedure::text as fn, pg_get_functiondef(p.oid) as body
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('api', 'internal', 'runner') and p.prokind in ('f', 'p')`
  const codes = new Map<string, string[]>()
  const patterns = [
    /'{1,2}([a-z_]+):'{1,2}(?:::text)?\s*\|\|/g,
    /array\[\s*'{1,2}([a-z_]+)'{1,2}(?:::text)?\s*\]/gi,
    /v_reason\s*:=\s*'([a-z_]+)'/g,
  ]
  for (const { fn, body } of bodies) {
    for (const [i, pattern] of patterns.entries()) {
      for (const m of body.matchAll(pattern)) {
        const code = i === 0 ? `${m[1]}:<field>` : m[1]
        codes.set(code, [...new Set([...(codes.get(code) ?? []), fn])])
      }
    }
  }
  return codes
}

/** The codes in the first column of the README's table under "| code | when |". */
async function readmeCodes(): Promise<string[]> {
  const lines = (await readFile(join(projectRoot, 'README.md'), 'utf8')).split('\n')
  const start = lines.findIndex((l) => /^\|\s*code\s*\|\s*when\s*\|/.test(l))
  assert.ok(start >= 0, 'the README has no "| code | when |" table of reason codes')
  const codes: string[] = []
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break
    for (const m of line.split('|')[1].matchAll(/`([^`]+)`/g)) codes.push(general(m[1]))
  }
  return [...new Set(codes)].sort()
}

test('every reason code the rules emit is in data.reason_codes and the README, and nothing else is', async () => {
  const emitted = await emittedCodes()
  const listed = (await sql<{ code: string }[]>`select code from data.reason_codes order by code`).map((r) => r.code)
  const readme = await readmeCodes()
  // Not vacuous: the forms above find the codes of every kind of rule.
  for (const code of ['missing:<field>', 'bad_datetime:<field>', 'unknown_reference:<field>', 'duplicate_id', 'wrong_field_count', 'bad_encoding']) {
    assert.ok(emitted.has(code), `${code} was not found in the functions: the patterns no longer match how the rules write codes`)
  }
  const where = (code: string) => `${code} (emitted by ${emitted.get(code)!.join(', ')})`
  assert.deepEqual([...emitted.keys()].filter((c) => !listed.includes(c)).map(where), [], 'emitted but not in data.reason_codes (add them in a new migration)')
  assert.deepEqual([...emitted.keys()].filter((c) => !readme.includes(c)).map(where), [], 'emitted but not in the README\'s table of reason codes')
  assert.deepEqual(listed.filter((c) => !emitted.has(c)), [], 'in data.reason_codes but emitted by no function')
  assert.deepEqual(readme.filter((c) => !emitted.has(c)), [], 'in the README\'s table but emitted by no function')
})
