// The API server must not load jsdom or Observable Plot: they render the HTML reports, which only
// the command line writes. Checked on the module graph, static and dynamic imports alike, as the
// TypeScript compiler reads them; the rendering side is checked to reach both, so the walk works.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { test } from 'node:test'
import ts from 'typescript'
import { projectRoot } from '../../src/paths.ts'

/** The packages a module reaches, through every relative import, and the project files on the way. */
function reach(entry: string): { packages: Set<string>; files: Set<string> } {
  const files = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string) => {
    if (files.has(file)) return
    files.add(file)
    for (const { fileName } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (fileName.startsWith('.')) {
        const target = resolve(dirname(file), fileName)
        assert.ok(existsSync(target), `${file} imports ${fileName}, which is not a file`)
        visit(target)
      } else if (!fileName.startsWith('node:')) {
        packages.add(
          fileName
            .split('/')
            .slice(0, fileName.startsWith('@') ? 2 : 1)
            .join('/'),
        )
      }
    }
  }
  visit(join(projectRoot, entry))
  return { packages, files }
}

const RENDERING = ['jsdom', '@observablehq/plot']

test('the API server and the report data reach neither jsdom nor Plot', () => {
  for (const entry of ['src/server.ts', 'src/report/data.ts', 'src/report/csv.ts']) {
    const { packages, files } = reach(entry)
    for (const name of RENDERING) assert.ok(!packages.has(name), `${entry} reaches ${name}`)
    for (const file of files) assert.ok(!/report\/(charts|html|pages|write)\.ts$/.test(file), `${entry} reaches ${file}`)
  }
  assert.ok(reach('src/server.ts').files.has(join(projectRoot, 'src/report/data.ts')), 'the API serves the report data')
})

test('the report files reach both (so the walk above can find them)', () => {
  const { packages } = reach('src/report/write.ts')
  for (const name of RENDERING) assert.ok(packages.has(name), name)
})
