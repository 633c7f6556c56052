// The CSV dialect of the historical files: header-less, comma-separated, RFC 4180
// quoting, CRLF or LF, optional UTF-8 BOM, optional final newline.
import { Transform, type TransformCallback } from 'node:stream'
import { parse, type Parser } from 'csv-parse'

export function csvParser(): Parser {
  return parse({ bom: true, relax_column_count: true, skip_empty_lines: true, info: true })
}

interface ParsedRecord { record: string[]; info: { lines: number } }

/** Number of line breaks in a record's fields (a CRLF counts once) and of CRLFs among them. */
function breaksIn(fields: string[]): { breaks: number; crlf: number } {
  let breaks = 0
  let crlf = 0
  for (const f of fields) {
    if (!f.includes('\n') && !f.includes('\r')) continue
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '\r' && f[i + 1] === '\n') { crlf++; breaks++; i++ } else if (f[i] === '\n' || f[i] === '\r') breaks++
    }
  }
  return { breaks, crlf }
}

/**
 * Turns parsed records into COPY text lines `position \t payload` for the staging
 * table, where position is the record's first line in the file and payload the JSON
 * array of its fields, exactly as read. Lines are grouped into chunks of about 64 KiB.
 */
export class CopyLines extends Transform {
  rows = 0
  private overCount = 0 // csv-parse counts a CRLF inside quotes as two lines
  private pending: string[] = []
  private pendingBytes = 0

  constructor() {
    super({ writableObjectMode: true })
  }

  override _transform({ record, info }: ParsedRecord, _enc: BufferEncoding, done: TransformCallback): void {
    const { breaks, crlf } = breaksIn(record)
    this.overCount += crlf
    const line = info.lines - this.overCount - breaks
    // PostgreSQL text cannot hold U+0000; anything else is kept as read.
    const fields = record.map((f) => (f.includes('\0') ? f.replaceAll('\0', '\uFFFD') : f))
    // JSON escapes control characters, so only backslashes need COPY's escaping.
    const text = `${line}\t${JSON.stringify(fields).replaceAll('\\', '\\\\')}\n`
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
