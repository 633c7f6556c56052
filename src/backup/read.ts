// Reading an Avro backup file: without ever blocking on a FIFO or a device, block by block
// with every check that can be made (magic, sync markers, sizes under AVRO_MAX_BLOCK_BYTES,
// records filling each block, the row count in the metadata, the .sha256 beside it).
import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { promisify } from 'node:util'
import { inflateRaw as inflateRawCallback, type ZlibOptions } from 'node:zlib'
import avro from 'avsc'
import { wholeFromEnv } from '../env.ts'
import { BackupFileError } from '../errors.ts'
import { avroType } from './avro.ts'

const inflateRaw = promisify(inflateRawCallback) as (data: Buffer, options: ZlibOptions) => Promise<Buffer>

export interface FileCheck {
  path: string
  table: string | null
  rows: number
  metadataRows: number | null
  sha256: string
  checksum: 'ok' | 'none'
}

/** The most bytes one Avro block may hold, compressed or not (AVRO_MAX_BLOCK_BYTES). */
export function maxBlockBytesFromEnv(): number {
  return wholeFromEnv('AVRO_MAX_BLOCK_BYTES', 16 * 1024 * 1024, { min: 1024, unit: 'bytes' })
}

const HEADER = avro.Type.forSchema({
  type: 'record',
  name: 'org.apache.avro.file.Header',
  fields: [
    { name: 'magic', type: { type: 'fixed', name: 'Magic', size: 4 } },
    { name: 'meta', type: { type: 'map', values: 'bytes' } },
    { name: 'sync', type: { type: 'fixed', name: 'Sync', size: 16 } },
  ],
})
const LONG = avro.Type.forSchema('long')
const MAGIC = Buffer.from('Obj\x01', 'latin1')
/** A header holds the schema: generous, but bounded. */
const MAX_HEADER_BYTES = 1024 * 1024

/** Opens a regular file for reading without ever blocking on a FIFO or a device. */
async function openRegular(path: string) {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  if (!(await fh.stat()).isFile()) {
    await fh.close()
    throw new BackupFileError('bad_backup', `${basename(path)} is not a regular file`)
  }
  return fh
}

/** A file read in order, chunk by chunk, with exact takes (each byte hashed once). */
class FileBytes {
  private parts: Buffer[] = []
  private length = 0
  private chunks: AsyncIterator<Buffer>
  constructor(
    stream: AsyncIterable<Buffer>,
    private onChunk: (chunk: Buffer) => void,
  ) {
    this.chunks = stream[Symbol.asyncIterator]()
  }

  /** Buffers at least n bytes if the file has them; false when it ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.length < n) {
      const next = await this.chunks.next()
      if (next.done) return false
      this.onChunk(next.value)
      this.parts.push(next.value)
      this.length += next.value.length
    }
    return true
  }

  /** The buffered bytes, up to n, without taking them. */
  peek(n: number): Buffer {
    if (this.parts.length > 1 && this.parts[0].length < n) this.parts = [Buffer.concat(this.parts)]
    return (this.parts[0] ?? Buffer.alloc(0)).subarray(0, n)
  }

  take(n: number): Buffer {
    const out = this.peek(n)
    this.parts[0] = this.parts[0].subarray(n)
    if (this.parts[0].length === 0) this.parts.shift()
    this.length -= n
    return out
  }

  get buffered(): number {
    return this.length
  }
}

/** Reads an Avro header from the start of `bytes`: magic, metadata, sync marker. */
async function readHeader(bytes: FileBytes, name: string): Promise<{ meta: Record<string, Buffer>; sync: Buffer }> {
  for (let want = 4096; ; want *= 4) {
    const complete = await bytes.fill(want)
    if (!bytes.peek(4).equals(MAGIC)) throw new BackupFileError('bad_backup', `${name} is not an Avro file (no Obj\\x01 magic)`)
    const { value, offset } = HEADER.decode(bytes.peek(bytes.buffered)) as {
      value: { meta: Record<string, Buffer>; sync: Buffer }
      offset: number
    }
    if (offset >= 0) {
      bytes.take(offset)
      return { meta: value.meta, sync: Buffer.from(value.sync) }
    }
    if (!complete) throw new BackupFileError('bad_backup', `${name} is truncated: its header is incomplete`)
    if (want > MAX_HEADER_BYTES) throw new BackupFileError('bad_backup', `${name}: its header is larger than ${MAX_HEADER_BYTES} bytes`)
  }
}

/** The metadata of an Avro file, read without blocking; null when it is not a readable Avro file. */
export async function readFileMeta(path: string): Promise<Record<string, Buffer> | null> {
  let fh
  try {
    fh = await openRegular(path)
    return (await readHeader(new FileBytes(fh.createReadStream({ autoClose: false, highWaterMark: 64 * 1024 }), () => {}), basename(path)))
      .meta
  } catch {
    return null
  } finally {
    await fh?.close()
  }
}

/**
 * Reads an Avro file to the end, handing each record to `onRecord` (reading waits while
 * the promise it may return is pending), and checks everything that can be checked: magic,
 * every block whole and followed by the sync marker (a cut file fails even without the
 * toolkit's row count), each block's records filling it exactly, block sizes under
 * AVRO_MAX_BLOCK_BYTES (a deflate bomb is refused before it is inflated), the row count in
 * the metadata, the .sha256 beside it. The callbacks' own errors come out as they are.
 */
export async function readBackupFile(
  path: string,
  onHeader: (schema: object, meta: Record<string, Buffer>) => void,
  onRecord: (record: Record<string, unknown>) => Promise<void> | void,
  maxBlockBytes = maxBlockBytesFromEnv(),
): Promise<FileCheck> {
  const name = basename(path)
  const bad = (why: string) => new BackupFileError('bad_backup', `${name} ${why}`)
  const hash = createHash('sha256')
  const fh = await openRegular(path)
  let rows = 0
  let meta: Record<string, Buffer>
  try {
    const bytes = new FileBytes(fh.createReadStream({ autoClose: false, highWaterMark: 256 * 1024 }), (chunk) => hash.update(chunk))
    const header = await readHeader(bytes, name)
    meta = header.meta
    const codec = meta['avro.codec']?.toString() ?? 'null'
    if (codec !== 'null' && codec !== 'deflate') throw bad(`uses the ${codec} codec: only null and deflate are supported`)
    let schema: object
    let type: avro.Type
    try {
      schema = JSON.parse(meta['avro.schema']?.toString() ?? '')
      type = avroType(schema as avro.Schema)
    } catch (err) {
      throw bad(`is not a readable Avro file: bad schema (${(err as Error).message})`)
    }
    onHeader(schema, meta)
    const readLong = async (what: string, block: number) => {
      await bytes.fill(10)
      const { value, offset } = LONG.decode(bytes.peek(10)) as { value: number; offset: number }
      if (offset < 0) throw bad(`is truncated: block ${block} has no complete ${what}`)
      bytes.take(offset)
      return value
    }
    for (let block = 1; await bytes.fill(1); block++) {
      const count = await readLong('record count', block)
      const size = await readLong('size', block)
      if (size < 0 || count < 0) throw bad(`is damaged: block ${block} has a negative size or count`)
      if (size > maxBlockBytes)
        throw bad(`is refused: block ${block} holds ${size} bytes, more than AVRO_MAX_BLOCK_BYTES (${maxBlockBytes})`)
      if (!(await bytes.fill(size)))
        throw bad(`is truncated: block ${block} should hold ${size} bytes, the file ends after ${bytes.buffered}`)
      const stored = bytes.take(size)
      if (!(await bytes.fill(16))) throw bad(`is truncated: block ${block} is not followed by its sync marker`)
      if (!bytes.take(16).equals(header.sync)) throw bad(`is damaged: the sync marker after block ${block} is wrong`)
      let data = stored
      if (codec === 'deflate') {
        data = await inflateRaw(stored, { maxOutputLength: maxBlockBytes }).catch((err: Error & { code?: string }) => {
          if (err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
            throw bad(`is refused: block ${block} inflates to more than AVRO_MAX_BLOCK_BYTES (${maxBlockBytes}) bytes`)
          }
          throw bad(`is damaged: block ${block} does not inflate (${err.message})`)
        })
      }
      // Every record takes at least one byte: a larger count is a lie that would spin here.
      if (count > data.length) throw bad(`is damaged: block ${block} claims ${count} records in ${data.length} bytes`)
      let at = 0
      for (let i = 0; i < count; i++) {
        const { value, offset } = type.decode(data, at) as { value: Record<string, unknown>; offset: number }
        if (offset < 0) throw bad(`is damaged: block ${block} ends inside record ${i + 1} of ${count}`)
        at = offset
        rows++
        const busy = onRecord(value)
        if (busy) await busy
        else if (rows % 4096 === 0) await new Promise((r) => setImmediate(r)) // let the event loop breathe
      }
      if (at !== data.length) throw bad(`is damaged: block ${block} has ${data.length - at} bytes after its ${count} records`)
    }
  } finally {
    await fh.close()
  }
  const sha256 = hash.digest('hex')
  const expected = await readSidecar(path)
  if (expected && expected !== sha256)
    throw new BackupFileError('bad_backup', `${name} is damaged: its SHA-256 is ${sha256}, the .sha256 beside it says ${expected}`)
  const metaRows = meta['hirebase.rows'] ? Number(meta['hirebase.rows'].toString()) : null
  if (metaRows !== null && metaRows !== rows)
    throw new BackupFileError('bad_backup', `${name} is incomplete: its metadata says ${metaRows} rows, it holds ${rows}`)
  return {
    path,
    table: meta['hirebase.table']?.toString() ?? null,
    rows,
    metadataRows: metaRows,
    sha256,
    checksum: expected ? 'ok' : 'none',
  }
}

/** The SHA-256 that the .sha256 file beside a backup gives, if there is one. */
export async function readSidecar(path: string): Promise<string | undefined> {
  const text = await readFile(`${path}.sha256`, 'utf8').catch(() => undefined)
  return text?.split(/\s+/)[0]
}
