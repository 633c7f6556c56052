// The README and docs/*.md link to each other: every relative link must lead to a file of the
// checkout and, with a #fragment, to a heading of that file, so moving a section between them
// cannot leave a reader at a dead end.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'
import { projectRoot } from '../../src/paths.ts'

/** GitHub's anchor for a heading: lower case, inline Markdown dropped, every character but letters,
 *  digits, `_`, `-` and spaces dropped, spaces made `-`; a repeated anchor gets `-1`, `-2`, ... */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>()
  const found = new Set<string>()
  for (const line of withoutCode(markdown, false).split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1]
    if (heading === undefined) continue
    const text = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link keeps its text
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    found.add(n ? `${base}-${n}` : base)
  }
  return found
}

/** The text without fenced blocks (line count kept) and, unless `inline` is false, without inline code. */
function withoutCode(markdown: string, inline = true): string {
  let fence: string | undefined
  return markdown
    .split('\n')
    .map((line) => {
      const mark = /^\s*(`{3,}|~{3,})/.exec(line)?.[1]
      if (fence) {
        if (mark?.startsWith(fence)) fence = undefined
        return ''
      }
      if (mark) {
        fence = mark
        return ''
      }
      return inline ? line.replace(/(`+)[\s\S]*?\1/g, '') : line
    })
    .join('\n')
}

/** The relative links of a Markdown text: [text](target), with the line they are on. */
export function relativeLinks(markdown: string): { line: number; target: string }[] {
  return withoutCode(markdown)
    .split('\n')
    .flatMap((text, i) =>
      [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)]
        .map((m) => m[1])
        .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target)) // http:, https:, mailto:
        .map((target) => ({ line: i + 1, target })),
    )
}

/** What is wrong with the links of `file` (a path relative to `root`): one line per dead link. */
export async function deadLinks(root: string, file: string): Promise<string[]> {
  const text = await readFile(join(root, file), 'utf8')
  const problems: string[] = []
  for (const { line, target } of relativeLinks(text)) {
    const [path, fragment] = target.split('#', 2)
    const to = path ? join(dirname(join(root, file)), decodeURIComponent(path)) : join(root, file)
    const where = `${file}:${line}: ${target}`
    if (!existsSync(to)) {
      problems.push(`${where}: no such file ${relative(root, to)}`)
      continue
    }
    if (fragment === undefined) continue
    if (!to.endsWith('.md')) {
      problems.push(`${where}: #${fragment} in a file that is not Markdown`)
      continue
    }
    if (!anchors(await readFile(to, 'utf8')).has(decodeURIComponent(fragment)))
      problems.push(`${where}: ${relative(root, to)} has no heading with the anchor #${fragment}`)
  }
  return problems
}

test('every relative link of README.md and docs/*.md leads to a file, and a #fragment to a heading there', async () => {
  const files = ['README.md', ...(await readdir(join(projectRoot, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
  const links = (await Promise.all(files.map(async (f) => relativeLinks(await readFile(join(projectRoot, f), 'utf8'))))).flat()
  assert.ok(links.length > 20, `only ${links.length} relative links found: the scan is broken`)
  const problems = (await Promise.all(files.map((f) => deadLinks(projectRoot, f)))).flat()
  assert.deepEqual(problems, [], 'dead links')
})

test('the link check knows GitHub anchors and catches a dead file or anchor', async () => {
  assert.deepEqual(
    [
      ...anchors(
        '# Backup and restore (Avro)\n## Scheduled runs (pg_cron)\n### Faults (`test/x-*.ts`)\n## A\n## A\n```\n# not a heading\n```\n',
      ),
    ],
    ['backup-and-restore-avro', 'scheduled-runs-pg_cron', 'faults-testx-ts', 'a', 'a-1'],
  )
  assert.deepEqual(relativeLinks('[a](docs/x.md#y) [b](https://example.org) `[c](no.md)`\n```\n[d](no.md)\n```\n[e](#z)'), [
    { line: 1, target: 'docs/x.md#y' },
    { line: 5, target: '#z' },
  ])
  // On the real tree: a file that does not exist, an anchor that does not, and a good one.
  const root = await mkdtemp(join(tmpdir(), 'hirebase-links-'))
  await mkdir(join(root, 'docs'))
  await writeFile(join(root, 'docs/a.md'), '# A\n\n## What each operation locks, and for how long\n\n[up](../README.md#gone)\n')
  await writeFile(
    join(root, 'README.md'),
    '# R\n[ok](docs/a.md#what-each-operation-locks-and-for-how-long)\n[no file](docs/b.md)\n[no anchor](docs/a.md#locks)\n[here](#r)\n',
  )
  assert.deepEqual(await deadLinks(root, 'README.md'), [
    'README.md:3: docs/b.md: no such file docs/b.md',
    'README.md:4: docs/a.md#locks: docs/a.md has no heading with the anchor #locks',
  ])
  assert.deepEqual(await deadLinks(root, 'docs/a.md'), ['docs/a.md:5: ../README.md#gone: README.md has no heading with the anchor #gone'])
})

// Paths of the checkout named in code spans (`src/backup/read.ts`, `test/node/bounds.test.ts`):
// moved text kept naming src/backup.ts after backups became a folder.
test('every path of the checkout that README.md and docs/*.md name in code exists', async () => {
  const external = new Set(['src/backend/distributed/commands/trigger.c']) // Citus's source, cited in scale-out.md
  const files = [
    'README.md',
    '.env.example',
    ...(await readdir(join(projectRoot, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  ]
  const missing: string[] = []
  let seen = 0
  for (const file of files) {
    const lines = (await readFile(join(projectRoot, file), 'utf8')).split('\n')
    lines.forEach((text, i) => {
      for (const [, path] of text.matchAll(/`((?:\.\.\/)?(?:src|test|sql|scripts|bench|docs|\.ci)\/[^`\s]*)`/g)) {
        if (/[*<{…]/.test(path) || external.has(path)) continue // a pattern, not a path
        seen++
        const to = join(dirname(join(projectRoot, file)), path.startsWith('../') ? path : join(relative(dirname(file), '.'), path))
        if (!existsSync(to)) missing.push(`${file}:${i + 1}: ${path}`)
      }
    })
  }
  assert.ok(seen > 30, `only ${seen} paths found: the scan is broken`)
  assert.deepEqual(missing, [], 'paths that do not exist')
})
