// Settings read from the environment (README "Configuration"), the one way: unset or empty
// means the default; a bad value is refused before anything starts, naming the variable, what
// it must be and what it was. Numbers are whole and at least 1 unless the setting says otherwise.

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
