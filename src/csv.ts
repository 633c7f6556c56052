// The CSV dialect of the historical files: header-less, comma-separated, RFC 4180
// quoting, records ending in CRLF, LF or CR (mixed in one file too), optional UTF-8 BOM,
// optional final newline.
import { Transform, type TransformCallback } from 'node:stream'
import { parse, type Parser } from 'csv-parse'

// Blank lines come through as [''] and CopyLines counts and skips them: csv-parse's own
// line numbers (its `info` option) cost more than the parsing itself.
// Without record_delimiter, csv-parse takes the first line's ending for every record, and a
// file with CRLF and LF lines is misread. relax_quotes: a quote inside an unquoted field
// (John "Johnny" Doe) is part of the value, so one stray quote costs no file; only a quoted
// field left open to the end is malformed.
export const CSV_OPTIONS = { bom: true, relax_column_count: true, relax_quotes: true, record_delimiter: ['\r\n', '\n', '\r'] }

export function csvParser(): Parser {
  return parse(CSV_OPTIONS)
}

/** Number of line breaks in a record's fields (a CRLF counts once). */
export function breaksIn(fields: string[]): number {
  let breaks = 0
  for (const f of fields) {
    if (!f.includes('\n') && !f.includes('\r')) continue
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '\r' && f[i + 1] === '\n') {
        breaks++
        i++
      } else if (f[i] === '\n' || f[i] === '\r') breaks++
    }
  }
  return breaks
}

// A field as a quoted text[] element (`"` and `\` backslashed) inside COPY's text format
// (backslashes doubled, line breaks and tabs escaped). PostgreSQL text cannot hold U+0000,
// which also marks bytes that were not UTF-8 (encoding.ts): the record is staged as
// unreadable (bad_encoding), its fields logged with U+FFFD there. Anything else is kept as read.
const SPECIAL = /["\\\n\r\t\0]/
const ESCAPED: Record<string, string> = { '"': '\\\\"', '\\': '\\\\\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\0': '\uFFFD' }

/** A blank line, as csv-parse gives it. */
export const isBlank = (record: string[]) => record.length === 1 && record[0] === ''

/** One record as a COPY text line for the staging table (see CopyLines). */
export function copyLine(line: number, record: string[]): string {
  let text = `${line}\t{`
  let unreadable = false
  for (let i = 0; i < record.length; i++) {
    const field = record[i]
    if (SPECIAL.test(field)) {
      unreadable ||= field.includes('\0')
      text += `${i ? ',' : ''}"${field.replace(/["\\\n\r\t\0]/g, (c) => ESCAPED[c])}"`
    } else {
      text += `${i ? ',' : ''}"${field}"`
    }
  }
  return text + (unreadable ? '}\tbad_encoding\n' : '}\t\\N\n')
}

/**
 * Turns parsed records into COPY text lines `position \t fields \t unreadable` for the
 * staging table, where position is the record's first line in the file, fields a text[] of
 * its fields, exactly as read, and unreadable `bad_encoding` for a record with NUL or bytes
 * that were not UTF-8. Lines are grouped into chunks of about 64 KiB.
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
    if (isBlank(record)) return done()
    const text = copyLine(line, record)
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
