// Settings read from the environment (README "Configuration"), the one way: unset or empty
// means the default; a bad value is refused before anything starts, naming the variable, what
// it must be and what it was. Numbers are whole and at least 1 unless the setting says otherwise.
// .env fills in the same settings, and only those.
import { closeSync, existsSync, fstatSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseEnv } from 'node:util'
import { projectRoot } from './paths.ts'

/** The settings of README "Configuration" (test/node/env.test.ts keeps the two equal). */
export const SETTINGS: ReadonlySet<string> = new Set([
  'DATABASE_URL',
  'EMBEDDED_PG_PORT',
  'REPORTS_DIR',
  'BACKUP_DIR',
  'BACKUP_KEEP',
  'FILE_MODE',
  'LOAD_MAX_RECORD_BYTES',
  'LOAD_MAX_FIELDS',
  'LOAD_PARALLEL_MIN_BYTES',
  'CI',
  'HOST',
  'PORT',
  'API_TOKEN',
  'READ_TOKEN',
  'API_TOKEN_READS',
  'ALLOWED_HOSTS',
  'ALLOWED_ORIGINS',
  'DATABASE_REPLICA_URLS',
  'REPLICA_MAX_LAG',
  'REPLICA_WAIT_MS',
  'PG_BIN',
  'API_DATABASE_URL',
  'LOG_LEVEL',
  'RATE_LIMIT_MAX',
  'RATE_LIMIT_WINDOW_SECONDS',
  'REJECT_PAYLOAD_MAX_BYTES',
  'INGEST_LOG_MAX_BATCHES',
  'INGEST_LOG_MAX_REJECTS',
  'IDEMPOTENCY_MAX_KEYS',
  'STATEMENT_TIMEOUT_MS',
  'LOCK_TIMEOUT_MS',
  'POOL_SIZE',
  'POOL_TIMEOUT_MS',
  'HTTP_CONNECTION_TIMEOUT_MS',
  'HTTP_REQUEST_TIMEOUT_MS',
  'BACKUP_CONCURRENCY',
  'AVRO_MAX_BLOCK_BYTES',
  'TEST_CONCURRENCY',
  'HOUSEKEEPING_INTERVAL_MINUTES',
  'SCHEDULE_BACKUP',
  'SCHEDULE_REPORTS',
  'SCHEDULE_HOUSEKEEPING',
  'RETENTION_DAYS',
])

/** A token, or a URL with a password in it. */
function isSecret(name: string, value: string): boolean {
  if (name.endsWith('_TOKEN')) return value !== ''
  if (!/_URLS?$/.test(name)) return false
  return value.split(',').some((url) => {
    try {
      return new URL(url.trim()).password !== ''
    } catch {
      return /:[^@/]*@/.test(url)
    }
  })
}

/**
 * The settings in `.env` of the project folder that `env` does not set (the real environment
 * wins; an empty value counts as unset), with Node's own parser: KEY=value lines, # comments,
 * quotes. Any other key (NODE_OPTIONS, PATH: what every child process would inherit) is ignored,
 * with a warning naming it. Returns the names it set.
 */
export function loadDotEnv(
  file = join(projectRoot, '.env'),
  env: NodeJS.ProcessEnv = process.env,
  warn: (message: string) => void = (message) => void process.stderr.write(`warning: ${message}\n`),
): string[] {
  if (!existsSync(file)) return []
  const fd = openSync(file, 'r')
  let text: string
  let readable: boolean
  try {
    // Whoever else can write it could point DATABASE_URL at a server of theirs: not read, as
    // folders others can write are refused (src/files.ts). (fstat: the file read, not a name.)
    const s = fstatSync(fd)
    const me = process.getuid?.() ?? s.uid
    if (s.mode & 0o002 || (s.uid !== me && s.uid !== 0)) {
      const why = s.mode & 0o002 ? 'is writable by other users' : `belongs to another user (uid ${s.uid})`
      warn(`${file} ${why}, who could change the settings: not read (chmod o-w it, or make it yours)`)
      return []
    }
    text = readFileSync(fd, 'utf8')
    readable = (s.mode & 0o044) !== 0
  } finally {
    closeSync(fd)
  }
  const settings = Object.entries(parseEnv(text)).map(([name, value]) => [name, value ?? ''] as const)
  const secrets = settings.filter(([name, value]) => SETTINGS.has(name) && isSecret(name, value)).map(([name]) => name)
  if (readable && secrets.length > 0) warn(`${file} holds ${secrets.sort().join(', ')} and other users may read it: chmod 600 ${file}`)
  const set: string[] = []
  const ignored: string[] = []
  for (const [name, value] of settings) {
    if (!SETTINGS.has(name)) ignored.push(name)
    else if (env[name] === undefined && value !== '') {
      env[name] = value
      set.push(name)
    }
  }
  if (ignored.length > 0)
    warn(
      `${file}: ${ignored.sort().join(', ')} ${ignored.length === 1 ? 'is not a setting' : 'are not settings'} of hirebase (README "Configuration"): ignored`,
    )
  return set
}

/** `text` as a whole number (ASCII digits) within min..max, or undefined. */
export function parseWhole(text: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined
  const n = Number(text)
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined
}

/**
 * The setting `name` as `parse` reads it (undefined: refused), or `fallback` when unset or
 * empty. `expected` says what it must be, for the error.
 */
export function settingFromEnv<T>(
  name: string,
  fallback: T,
  parse: (text: string) => T | undefined,
  expected: string,
  env: NodeJS.ProcessEnv = process.env,
): T {
  const text = env[name]
  if (text === undefined || text === '') return fallback
  const value = parse(text.trim())
  if (value === undefined) throw new Error(`${name} must be ${expected}, got "${text}"`)
  return value
}

export interface WholeSetting {
  min?: number
  max?: number
  /** What the number counts, for the error: "a whole number of bytes". */
  unit?: string
  /** Said after the range in the error: "(100 years)". */
  note?: string
}

/** A whole-number setting: `fallback` when unset, else from `min` (1) to `max`. */
export function wholeFromEnv(name: string, fallback: number, setting: WholeSetting = {}, env: NodeJS.ProcessEnv = process.env): number {
  const { min = 1, max, unit, note } = setting
  const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`
  return settingFromEnv(
    name,
    fallback,
    (text) => parseWhole(text, min, max),
    `a whole number${unit ? ` of ${unit}` : ''} ${range}${note ? ` (${note})` : ''}`,
    env,
  )
}
