// docs/errors.md and src/errors.ts list the same codes with the same HTTP statuses and API codes.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { ANSWERED, RAISED, RETRY, toApiError, UNAVAILABLE } from '../../src/errors.ts'
import { projectRoot } from '../../src/paths.ts'

interface Row {
  code: string
  status: number
  api: string
}

/** Every row of the doc's tables that reaches HTTP: the codes in its first cell, the status and API code in its last. */
async function documented(): Promise<Row[]> {
  const text = await readFile(join(projectRoot, 'docs/errors.md'), 'utf8')
  const rows: Row[] = []
  for (const line of text.split('\n').filter((l) => l.startsWith('| `'))) {
    const cells = line.split(' | ').map((c) => c.replace(/^\| |\s*\|$/g, '').trim())
    const http = cells.at(-1)!
    if (http === '—') continue
    const m = /^(\d{3})(?: `([a-z_]+)`)?/.exec(http)
    assert.ok(m, `no status in the last cell of: ${line}`)
    for (const [, code] of cells[0].matchAll(/`([^`]+)`/g)) rows.push({ code, status: Number(m[1]), api: m[2] ?? code })
  }
  return rows
}

/** What src/errors.ts makes of a documented code. */
function mapped(code: string): { status: number; code: string } {
  if (code.startsWith('bad_parameter:')) return toApiError({ validation: [{ instancePath: '/x' }], message: 'm' })
  if (code in ANSWERED && !(code in RAISED)) return { status: ANSWERED[code], code }
  return toApiError({ code: code.replace(/xxx$/, '003'), message: 'm' })
}

test('every code in docs/errors.md is mapped by src/errors.ts to the status and API code the doc gives', async () => {
  const rows = await documented()
  assert.ok(rows.length > 40, `only ${rows.length} rows read: has the doc's table format changed?`)
  for (const row of rows) {
    const got = mapped(row.code)
    assert.equal(got.status, row.status, `${row.code}: doc says ${row.status}, src/errors.ts gives ${got.status}`)
    assert.equal(got.code, row.code.startsWith('bad_parameter:') ? 'bad_parameter:x' : row.api, `${row.code}: API code`)
  }
})

test('every code src/errors.ts maps is in docs/errors.md, with the same status and API code', async () => {
  const rows = await documented()
  const expected: Row[] = [
    ...Object.entries(RAISED).map(([code, [status, api]]) => ({ code, status, api })),
    ...Object.entries(RETRY).map(([code, [api]]) => ({ code, status: 503, api })),
    ...UNAVAILABLE.map((code) => ({ code, status: 503, api: 'database_unavailable' })),
    ...Object.entries(ANSWERED).map(([code, status]) => ({ code, status, api: code })),
    { code: '08xxx', status: 503, api: 'database_unavailable' },
    { code: '22xxx', status: 400, api: 'bad_value' },
  ]
  for (const want of expected) {
    const found = rows.filter((r) => r.code === want.code)
    assert.ok(found.length, `${want.code} (${want.status} ${want.api}) is not in docs/errors.md`)
    assert.ok(
      found.some((r) => r.status === want.status && r.api === want.api),
      `${want.code}: src/errors.ts gives ${want.status} ${want.api}, docs/errors.md says ${found.map((r) => `${r.status} ${r.api}`).join(', ')}`,
    )
  }
})

test('40001 and 40P01 are retryable 503s, not 500s', () => {
  for (const code of ['40001', '40P01']) assert.equal(toApiError({ code, message: 'm' }).status, 503)
})
