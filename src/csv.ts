// The CSV dialect of the historical files: header-less, comma-separated, RFC 4180
// quoting, CRLF or LF, optional UTF-8 BOM, optional final newline.
import { Transform, type TransformCallback } from 'node:stream'
import { parse, type Parser } from 'csv-parse'

// Blank lines come through as [''] and CopyLines counts and skips them: csv-parse's own
// line numbers (its `info` option) cost more than the parsing itself.
export function csvParser(): Parser {
  return parse({ bom: true, relax_column_count: true })
}

/** Number of line breaks in a record's fields (a CRLF counts once). */
function breaksIn(fields: string[]): number {
  let breaks = 0
  for (const f of fields) {
    if (!f.includes('\n') && !f.includes('\r')) continue
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '\r' && f[i + 1] === '\n') { breaks++; i++ } else if (f[i] === '\n' || f[i] === '\r') breaks++
    }
  }
  return breaks
}

// A field as a quoted text[] element (`"` and `\` backslashed) inside COPY's text format
// (backslashes doubled, line breaks and tabs escaped). PostgreSQL text cannot hold U+0000;
// anything else is kept as read.
const SPECIAL = /["\\\n\r\t\0]/
const ESCAPED: Record<string, string> = { '"': '\\\\"', '\\': '\\\\\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\0': '\uFFFD' }
const element = (field: string) => (SPECIAL.test(field) ? field.replace(/["\\\n\r\t\0]/g, (c) => ESCAPED[c]) : field)

/**
 * Turns parsed records into COPY text lines `position \t fields` for the staging table,
 * where position is the record's first line in the file and fields a text[] of its fields,
 * exactly as read. Lines are grouped into chunks of about 64 KiB.
 */
export class CopyLines extends Transform {
  rows = 0
  private nextLine = 1
  private pending: string[] = []
  private pendingBytes = 0

  constructor() {
    super({ writableObjectMode: true })
  }

  override _transform(record: string[], _enc: BufferEncoding, done: TransformCallback): void {
    const line = this.nextLine
    this.nextLine += 1 + breaksIn(record)
    if (record.length === 1 && record[0] === '') return done() // a blank line
    let text = `${line}\t{"${element(record[0])}"`
    for (let i = 1; i < record.length; i++) text += `,"${element(record[i])}"`
    text += '}\n'
    this.rows++
    this.pending.push(text)
    this.pendingBytes += text.length
    if (this.pendingBytes >= 65536) this.flushPending()
    done()
  }

  override _flush(done: TransformCallback): void {
    this.flushPending()
    done()
  }

  private flushPending(): void {
    if (this.pending.length === 0) return
    this.push(this.pending.join(''))
    this.pending = []
    this.pendingBytes = 0
  }
}
