// @ts-check
// Lets the zx entry points load the TypeScript library in src/ without a build step.
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { register } from 'tsx/esm/api'

// Run by itself (npx zx scripts/ts.mjs), it would do nothing and exit 0: say what it is.
if (process.argv.slice(1).some((arg) => resolve(arg) === fileURLToPath(import.meta.url))) {
  process.stderr.write('error: scripts/ts.mjs is what the scripts use to load src/, not a command: see README, Commands\n')
  process.exit(2)
}

register()

/**
 * The modules under src/ an entry point may load, with their types for `npm run typecheck`.
 * @typedef {{
 *   'args.ts': typeof import('../src/args.ts'),
 *   'cli.ts': typeof import('../src/cli.ts'),
 *   'commands.ts': typeof import('../src/commands.ts'),
 *   'database.ts': typeof import('../src/database.ts'),
 *   'env.ts': typeof import('../src/env.ts'),
 *   'migrate.ts': typeof import('../src/migrate.ts'),
 *   'paths.ts': typeof import('../src/paths.ts'),
 *   'standby.ts': typeof import('../src/standby.ts'),
 *   'tasks.ts': typeof import('../src/tasks.ts'),
 * }} Modules
 */

/**
 * import() of a module under src/, e.g. `await lib('cli.ts')`.
 * @template {keyof Modules} N
 * @param {N} name
 * @returns {Promise<Modules[N]>}
 */
export const lib = (name) => import(new URL(`../src/${name}`, import.meta.url).href)
