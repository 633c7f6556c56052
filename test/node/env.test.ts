// Settings from the environment (src/env.ts): unset or empty is the default, a bad value is
// refused naming the variable, and every number setting goes through the same check.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { settingFromEnv, parseWhole, wholeFromEnv } from '../../src/env.ts'
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
