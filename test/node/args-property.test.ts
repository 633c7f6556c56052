// The command-line parser (src/args.ts) against a model of what a line means, on generated
// lines: options in both spellings and any order, repeated (the last one wins), values that
// look like options after `=`, unknown options, too many arguments, and `--`.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { check, UsageError, wholeNumber } from '../../src/args.ts'

const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const scale = Number(process.env.FUZZ_SCALE ?? 1)

const spec = {
  usage: ['[file] [file]'],
  summary: 'a command for the property',
  options: {
    force: { type: 'boolean' as const, short: 'f', help: 'a flag' },
    count: { type: 'string' as const, arg: 'N', help: 'a whole number', parse: wholeNumber(1) },
    name: { type: 'string' as const, arg: 'TEXT', help: 'any text' },
  },
  positionals: { max: 2 },
  examples: [],
}

type Item =
  | { kind: 'force'; form: '--force' | '-f' }
  | { kind: 'count'; value: string; joined: boolean }
  | { kind: 'name'; value: string; joined: boolean }
  | { kind: 'positional'; value: string }
  | { kind: 'unknown'; option: string }

const plain = fc.string({ minLength: 1, maxLength: 6 }).filter((s) => !s.startsWith('-'))
const item: fc.Arbitrary<Item> = fc.oneof(
  fc.constantFrom<Item>({ kind: 'force', form: '--force' }, { kind: 'force', form: '-f' }),
  fc.record({
    kind: fc.constant('count' as const),
    value: fc.oneof(fc.nat(99).map(String), fc.constantFrom('0', '-3', 'x', '1.5', '', '007')),
    joined: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('name' as const), value: fc.string({ maxLength: 6 }), joined: fc.boolean() }),
  fc.record({ kind: fc.constant('positional' as const), value: plain }),
  fc.record({ kind: fc.constant('unknown' as const), option: fc.constantFrom('--forse', '--cont', '--zzz', '-q') }),
)

/** The words of the line, or undefined when the item cannot be written without being misread. */
function words(i: Item): string[] | undefined {
  switch (i.kind) {
    case 'force':
      return [i.form]
    case 'count':
    case 'name':
      if (i.joined) return [`--${i.kind}=${i.value}`]
      // As its own word a value must not look like an option (the parser would refuse it).
      return i.value.startsWith('-') ? undefined : [`--${i.kind}`, i.value]
    case 'positional':
      return [i.value]
    case 'unknown':
      return [i.option]
  }
}

test('generated command lines mean what the model says, or are refused naming the first problem', () => {
  fc.assert(
    fc.property(
      fc.array(item, { maxLength: 8 }),
      fc.option(fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 })),
      (items, afterDashes) => {
        const usable = items.filter((i) => words(i) !== undefined)
        const line = [...usable.flatMap((i) => words(i)!), ...(afterDashes ? ['--', ...afterDashes] : [])]
        const positionals = [
          ...usable.filter((i) => i.kind === 'positional').map((i) => (i as { value: string }).value),
          ...(afterDashes ?? []),
        ]
        const unknown = usable.find((i) => i.kind === 'unknown') as { option: string } | undefined
        const last = (kind: 'count' | 'name') => (usable.filter((i) => i.kind === kind).at(-1) as { value: string } | undefined)?.value
        let result: ReturnType<typeof check<typeof spec.options>> | undefined
        let error: Error | undefined
        try {
          result = check(spec, line)
        } catch (err) {
          error = err as Error
        }
        const context = JSON.stringify(line)
        if (unknown) {
          assert.ok(error instanceof UsageError, context)
          assert.match(error.message, /^unknown option /, context)
          return
        }
        if (positionals.length > 2) {
          assert.ok(error instanceof UsageError, context)
          assert.equal(error.message, `unexpected argument ${JSON.stringify(positionals[2])} (at most 2)`, context)
          return
        }
        const count = last('count')
        if (count !== undefined && !(/^[0-9]+$/.test(count) && Number(count) >= 1)) {
          assert.ok(error instanceof UsageError, context)
          assert.equal(error.message, `--count ${JSON.stringify(count)}: expected a whole number >= 1`, context)
          return
        }
        assert.equal(error, undefined, context)
        assert.deepEqual(
          result,
          {
            values: {
              force: usable.some((i) => i.kind === 'force'),
              count: count === undefined ? undefined : Number(count),
              name: last('name'),
            },
            positionals,
          },
          context,
        )
      },
    ),
    { seed, numRuns: Math.ceil(5_000 * scale), includeErrorInReport: true },
  )
})

test('an extra argument with a quote or a newline is named readably (found by the property)', () => {
  assert.throws(() => check(spec, ['a', 'b', 'say "hi"\n']), { message: 'unexpected argument "say \\"hi\\"\\n" (at most 2)' })
})
