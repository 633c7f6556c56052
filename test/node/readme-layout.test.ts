// The README's Layout section matches the tree: every path its listing names exists, every
// folder of the checkout is in it, and every module of src/ (a subfolder by its name) is named
// in the paragraph on src/.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { projectRoot } from '../../src/paths.ts'

async function layout(): Promise<{ paths: string[]; src: string }> {
  const text = await readFile(join(projectRoot, 'README.md'), 'utf8')
  const section = /\n## Layout\n([\s\S]*?)\n## /.exec(text)?.[1]
  assert.ok(section, 'the README has no "## Layout" section')
  const listing = /```\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
  const paths = listing
    .split('\n')
    .filter((l) => /^\S/.test(l))
    .map((l) => l.split(/\s+/)[0])
  const src = /\nIn `src\/`:([\s\S]*?)(\n\n|$)/.exec(section)?.[1] ?? ''
  assert.ok(paths.length > 5 && src, 'the Layout section has no listing, or no paragraph on src/')
  return { paths, src }
}

test('the README layout names paths that exist, every folder of the checkout, and every module of src/', async () => {
  const { paths, src } = await layout()
  for (const path of paths) assert.ok(existsSync(join(projectRoot, path)), `the README's layout names ${path}, which does not exist`)
  for (const entry of await readdir(projectRoot, { withFileTypes: true })) {
    // (not the checkout's: dependencies, and what runs create, git-ignored)
    if (!entry.isDirectory() || ['.git', '.pgdata', 'node_modules', 'backups'].includes(entry.name)) continue
    assert.ok(
      paths.some((p) => p === entry.name || p.startsWith(`${entry.name}/`)),
      `the folder ${entry.name}/ is not in the README's layout`,
    )
  }
  for (const entry of await readdir(join(projectRoot, 'src'), { withFileTypes: true })) {
    const name = entry.isDirectory() ? `${entry.name}/` : entry.name
    assert.ok(src.includes(`\`${name}\``), `src/${name} is not in the README's paragraph on src/`)
  }
  for (const entry of await readdir(join(projectRoot, 'src/backup'))) {
    assert.ok(src.includes(`\`${entry}\``), `src/backup/${entry} is not in the README's paragraph on src/`)
  }
})
