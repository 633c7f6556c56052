// Bytes that are not UTF-8 must cost their row (bad_encoding), never be replaced by U+FFFD
// and accepted, and never fail a whole batch. PostgreSQL receives only valid UTF-8 and no
// NUL, so the runner marks each invalid sequence (and each NUL byte) in a form the database
// recognises: a NUL character in CSV (the staging flags the record), a \u0000 escape in JSON
// (the database cannot read that row alone, and says bad_encoding).
import { isUtf8 } from 'node:buffer'
import { Transform, type TransformCallback } from 'node:stream'

const BACKSLASH = 0x5c

/** Length of the valid UTF-8 sequence at `i`, 0 when invalid, -1 when cut off by the end. */
function sequenceLength(buf: Uint8Array, i: number): number {
  const b = buf[i]
  let n: number
  let lo = 0x80
  let hi = 0xbf
  if (b < 0x80) return 1
  else if (b >= 0xc2 && b <= 0xdf) n = 2
  else if (b >= 0xe0 && b <= 0xef) {
    n = 3
    if (b === 0xe0) lo = 0xa0
    else if (b === 0xed) hi = 0x9f
  } else if (b >= 0xf0 && b <= 0xf4) {
    n = 4
    if (b === 0xf0) lo = 0x90
    else if (b === 0xf4) hi = 0x8f
  } else return 0
  for (let k = 1; k < n; k++) {
    if (i + k >= buf.length) return -1
    const c = buf[i + k]
    if (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf) return 0
  }
  return n
}

type Replacement = (out: number[]) => number[]

/** In CSV: a NUL character. */
const csvMark: Replacement = () => [0]
/** In JSON: a \u0000 escape (after a lone backslash, the rest of one). */
const jsonMark: Replacement = (out) => {
  let backslashes = 0
  for (let k = out.length - 1; k >= 0 && out[k] === BACKSLASH; k--) backslashes++
  return backslashes % 2 === 1 ? [0x75, 0x30, 0x30, 0x30, 0x30] : [BACKSLASH, 0x75, 0x30, 0x30, 0x30, 0x30]
}

/**
 * `buf` with every invalid UTF-8 sequence and every NUL byte marked; `end` false when more
 * bytes follow (a sequence cut off at the end is then returned apart, to be prefixed to them).
 */
function mark(buf: Buffer, replacement: Replacement, end = true): { text: Buffer; rest: Buffer } {
  const out: number[] = []
  let i = 0
  while (i < buf.length) {
    const n = buf[i] === 0 ? 0 : sequenceLength(buf, i)
    if (n === -1 && !end) return { text: Buffer.from(out), rest: buf.subarray(i) }
    if (n > 0) {
      for (let k = 0; k < n; k++) out.push(buf[i + k])
      i += n
    } else {
      out.push(...replacement(out))
      i += 1
    }
  }
  return { text: Buffer.from(out), rest: Buffer.alloc(0) }
}

const clean = (buf: Buffer) => isUtf8(buf) && !buf.includes(0)

/** A request body as text, invalid bytes and NUL marked for JSON or CSV; a JSON body's BOM dropped (RFC 8259 allows it). */
export function decodeBody(buf: Buffer, format: 'json' | 'csv'): string {
  if (format === 'json' && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3)
  if (clean(buf)) return buf.toString('utf8')
  return mark(buf, format === 'json' ? jsonMark : csvMark).text.toString('utf8')
}

/** The bytes of a CSV stream, invalid UTF-8 and NUL bytes turned into NUL characters. */
export class MarkInvalidUtf8 extends Transform {
  private carry = Buffer.alloc(0)

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk
    // A multi-byte character cut by the chunk's end is kept for the next chunk.
    let cut = buf.length
    for (let k = 1; k <= 3 && k <= buf.length; k++) {
      const b = buf[buf.length - k]
      if (b < 0x80) break
      if (b >= 0xc0) {
        if (sequenceLength(buf, buf.length - k) === -1) cut = buf.length - k
        break
      }
    }
    const whole = buf.subarray(0, cut)
    if (clean(whole)) {
      this.carry = Buffer.from(buf.subarray(cut))
      done(null, whole)
      return
    }
    const { text, rest } = mark(buf, csvMark, false)
    this.carry = Buffer.from(rest)
    done(null, text)
  }

  override _flush(done: TransformCallback): void {
    done(null, this.carry.length ? mark(this.carry, csvMark).text : undefined)
  }
}
