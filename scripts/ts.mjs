// Lets the zx entry points load the TypeScript library in src/ without a build step.
import { register } from 'tsx/esm/api'

register()

/** import() of a module under src/, e.g. `await lib('cli.ts')`. */
export const lib = (name) => import(new URL(`../src/${name}`, import.meta.url).href)
