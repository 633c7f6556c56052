// Where the checkout is, and its version: for paths that must not depend on the current folder.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The checkout's root folder, wherever the command was started from. */
export const projectRoot = fileURLToPath(new URL('..', import.meta.url))

export const projectVersion: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version
