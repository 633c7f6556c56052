// The command line of every entry point (scripts/*.mjs): one parser (node:util parseArgs),
// --help, and exit code 2 for anything it does not know, before any work is done. Then the
// settings in .env, under the real environment.
import { statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadDotEnv, parseWhole } from './env.ts'
import { projectRoot } from './paths.ts'

export interface OptionSpec {
  type: 'string' | 'boolean'
  /** What the value looks like in the help, e.g. `N|P%`. */
  arg?: string
  help: string
  short?: string
  /** Checks and converts the value; throws an Error saying what is expected. */
  parse?: (value: string) => unknown
}

export interface CommandSpec<O extends Record<string, OptionSpec>> {
  /** After `npx zx scripts/x.mjs`, e.g. `[dir] [options]`; one entry per form. */
  usage: string[]
  summary: string
  options: O
  /** How many arguments that are not options it takes (default none). */
  positionals?: { min?: number; max?: number }
  /** Variables it reads besides the database's (DATABASE_URL, EMBEDDED_PG_PORT, LOG_LEVEL). */
  environment?: [name: string, help: string][]
  /** Whether it uses the database (default yes): adds its variables to the help. */
  database?: boolean
  examples: string[]
  /** Checks that need several values together; throws an Error saying what is wrong. */
  validate?: (values: Values<O>, positionals: string[]) => void
}

export type Values<O extends Record<string, OptionSpec>> = {
  [K in keyof O]: O[K] extends { type: 'boolean' }
    ? boolean
    : O[K] extends { parse: (value: string) => infer T }
      ? T | undefined
      : string | undefined
}

const DATABASE_ENVIRONMENT: [string, string][] = [
  ['DATABASE_URL', 'your PostgreSQL >= 15 (postgres://user:password@host:port/database); unset: the embedded one in .pgdata/'],
  ['EMBEDDED_PG_PORT', 'port number of the embedded PostgreSQL (default 54329; it listens on a socket in .pgdata/run only)'],
  ['LOG_LEVEL', "debug also prints the embedded server's log and database notices"],
]

/** The arguments given to the script at `scriptUrl`: zx runs it as `node zx/cli.js [zx options] script args`. */
function scriptArgs(scriptUrl: string): string[] {
  const script = fileURLToPath(scriptUrl)
  const at = process.argv.findIndex((arg, i) => i >= 1 && resolve(arg) === script)
  return process.argv.slice(at < 0 ? 2 : at + 1)
}

/** The `npx zx scripts/x.mjs` that runs the script at `scriptUrl`, as a user would type it. */
export function commandOf(scriptUrl: string): string {
  const script = fileURLToPath(scriptUrl)
  // bench/bench.mjs is run as npm run bench.
  if (script === join(projectRoot, 'bench', 'bench.mjs')) return 'npm run bench --'
  return script.startsWith(join(projectRoot, 'scripts'))
    ? `npx zx scripts/${script.slice(join(projectRoot, 'scripts').length + 1)}`
    : `npx zx ${script}`
}

export function helpText<O extends Record<string, OptionSpec>>(command: string, spec: CommandSpec<O>): string {
  const options: [string, string][] = Object.entries(spec.options).map(([name, o]) => [
    `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`,
    o.help,
  ])
  options.push(['-h, --help', 'print this help and exit'])
  const environment = [...(spec.database === false ? [] : DATABASE_ENVIRONMENT), ...(spec.environment ?? [])]
  const table = (rows: [string, string][]) => {
    const width = Math.min(28, Math.max(...rows.map(([left]) => left.length)) + 2)
    return rows
      .map(([left, right]) => `  ${left.padEnd(width)}${left.length >= width ? `\n  ${' '.repeat(width)}` : ''}${right}`)
      .join('\n')
  }
  return [
    `Usage: ${spec.usage.map((u) => `${command} ${u}`.trim()).join(`\n       `)}`,
    '',
    spec.summary,
    '',
    'Options:',
    table(options),
    ...(environment.length
      ? ['', 'Environment (also read from .env in the project folder; the real environment wins):', table(environment)]
      : []),
    '',
    `Example${spec.examples.length > 1 ? 's' : ''}:`,
    ...spec.examples.map((e) => `  ${e}`),
    '',
  ].join('\n')
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    row = next
  }
  return row[b.length]
}

export class UsageError extends Error {}

/** The options and arguments of `args`, or a UsageError naming what is wrong (no exit, no .env). */
export function check<O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  args: string[],
): { values: Values<O>; positionals: string[] } {
  const names = Object.keys(spec.options)
  let parsed
  try {
    parsed = parseArgs({
      args,
      options: {
        ...Object.fromEntries(
          Object.entries(spec.options).map(([name, o]) => [name, { type: o.type, ...(o.short ? { short: o.short } : {}) }]),
        ),
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    })
  } catch (err) {
    const e = err as Error & { code?: string }
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec(e.message)?.[1] ?? e.message
      const near = names.filter((n) => distance(option.replace(/^-+/, ''), n) <= 2)
      throw new UsageError(`unknown option ${option}${near.length ? ` (did you mean --${near[0]}?)` : ''}`)
    }
    // ERR_PARSE_ARGS_INVALID_OPTION_VALUE: a value missing, or given to a flag.
    const option = /'(-[^' ]+)/.exec(e.message)?.[1]
    if (option && /does not take an argument/.test(e.message)) throw new UsageError(`${option} takes no value`)
    if (option && /argument missing/.test(e.message)) throw new UsageError(`${option} needs a value`)
    if (option && /ambiguous/.test(e.message))
      throw new UsageError(`${option} needs a value (to give one that starts with a dash, write ${option}=-...)`)
    throw new UsageError(e.message)
  }
  const positionals = parsed.positionals
  const { min = 0, max = 0 } = spec.positionals ?? {}
  if (positionals.length > max) {
    // Quoted as JSON: an argument with a quote, a newline or a control character stays readable.
    const extra = JSON.stringify(positionals[max])
    throw new UsageError(
      max === 0 ? `unexpected argument ${extra} (this command takes options only)` : `unexpected argument ${extra} (at most ${max})`,
    )
  }
  if (positionals.length < min) throw new UsageError(`missing argument${min - positionals.length > 1 ? 's' : ''}`)
  const values: Record<string, unknown> = {}
  for (const [name, o] of Object.entries(spec.options)) {
    const value = (parsed.values as Record<string, unknown>)[name]
    if (o.type === 'boolean') values[name] = value === true
    else if (typeof value === 'string' && o.parse) {
      try {
        values[name] = o.parse(value)
      } catch (err) {
        throw new UsageError(`--${name} ${JSON.stringify(value)}: ${(err as Error).message}`)
      }
    } else values[name] = value
  }
  try {
    spec.validate?.(values as Values<O>, positionals)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  return { values: values as Values<O>, positionals }
}

/**
 * Checks the command line of the script at `scriptUrl` (pass `import.meta.url`) against
 * `spec`: --help prints the help and exits 0; anything unknown, missing or malformed exits 2
 * with an error that names it. Then reads .env. Returns the options' values and the arguments.
 */
export function parseCommandLine<O extends Record<string, OptionSpec>>(
  scriptUrl: string,
  spec: CommandSpec<O>,
  args = scriptArgs(scriptUrl),
): { values: Values<O>; positionals: string[] } {
  const command = commandOf(scriptUrl)
  // --help wins over anything else on the line (up to a `--`).
  const end = args.indexOf('--')
  if ((end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(helpText(command, spec))
    process.exit(0)
  }
  try {
    const result = check(spec, args)
    loadDotEnv()
    return result
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(
      `error: ${err.message}\nUsage: ${spec.usage.map((u) => `${command} ${u}`.trim()).join(`\n       `)}\n(${command} --help for more)\n`,
    )
    process.exit(2)
  }
}

// ---- values ----

/** A whole number from `min` up (to `max`). */
export const wholeNumber =
  (min = 1, max = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const n = parseWhole(value, min)
    if (n === undefined || n > max)
      throw new Error(max < Number.MAX_SAFE_INTEGER ? `expected a whole number from ${min} to ${max}` : `expected a whole number >= ${min}`)
    return n
  }

/** Refuses a path argument that does not exist or is not of the kind asked for (checked before any work). */
export function existingPath(path: string, kind: 'folder' | 'file' | 'file or folder'): void {
  let stats
  try {
    stats = statSync(path)
  } catch {
    throw new Error(`${JSON.stringify(path)}: no such ${kind}`)
  }
  if (kind === 'folder' && !stats.isDirectory()) throw new Error(`${JSON.stringify(path)} is not a folder`)
  if (kind === 'file' && !stats.isFile()) throw new Error(`${JSON.stringify(path)} is not a file`)
}

/** A year such as 2021. */
export const year = (value: string): number => {
  if (!/^[0-9]{4}$/.test(value) || Number(value) < 1) throw new Error('expected a year such as 2021')
  return Number(value)
}
