// Where a JSON text stops being JSON, so a malformed_json error can name the position
// (neither PostgreSQL's nor Node 20's parser says where, in every case).

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y
const HEX4 = /[0-9A-Fa-f]{4}/y

/** The 0-based offset of the first character that breaks the JSON grammar; null when there is none (or it nests too deep to tell). */
export function jsonErrorAt(text: string): number | null {
  let i = 0
  const stop = (): never => {
    throw new SyntaxError(String(i))
  }
  const space = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++
  }
  const expect = (c: string) => {
    space()
    if (text[i] !== c) stop()
    i++
  }
  const string = () => {
    i++ // the opening quote
    for (;;) {
      const c = text[i]
      if (c === undefined || c < ' ') stop()
      if (c === '"') {
        i++
        return
      }
      if (c !== '\\') {
        i++
        continue
      }
      const n = text[i + 1]
      if (n === 'u') {
        HEX4.lastIndex = i + 2
        if (!HEX4.test(text)) {
          i++
          stop()
        }
        i += 6
      } else if (n !== undefined && '"\\/bfnrt'.includes(n)) i += 2
      else {
        i++
        stop()
      }
    }
  }
  const value = (): void => {
    space()
    const c = text[i]
    if (c === '"') return string()
    if (c === '{') {
      i++
      space()
      if (text[i] === '}') {
        i++
        return
      }
      for (;;) {
        space()
        if (text[i] !== '"') stop()
        string()
        expect(':')
        value()
        space()
        if (text[i] === ',') {
          i++
          continue
        }
        if (text[i] === '}') {
          i++
          return
        }
        stop()
      }
    }
    if (c === '[') {
      i++
      space()
      if (text[i] === ']') {
        i++
        return
      }
      for (;;) {
        value()
        space()
        if (text[i] === ',') {
          i++
          continue
        }
        if (text[i] === ']') {
          i++
          return
        }
        stop()
      }
    }
    for (const word of ['true', 'false', 'null'])
      if (text.startsWith(word, i)) {
        i += word.length
        return
      }
    NUMBER.lastIndex = i
    const m = NUMBER.exec(text)
    if (!m) stop()
    i += m![0].length
  }
  try {
    value()
    space()
    if (i < text.length) stop()
    return null
  } catch (err) {
    return err instanceof SyntaxError ? Number(err.message) : null // RangeError: nested too deep
  }
}

/** The position of a JSON text's first error as fields and words: {position, line, column} (line and column from 1). */
export function jsonErrorPlace(text: string): { position: number; line: number; column: number } | null {
  const at = jsonErrorAt(text)
  if (at === null) return null
  const before = text.slice(0, at)
  const line = before.split('\n').length
  return { position: at, line, column: at - (before.lastIndexOf('\n') + 1) + 1 }
}
