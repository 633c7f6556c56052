// Avro schemas derived from the tables, and the types that read and write them with avsc.
import avro from 'avsc'
import { BackupFileError } from '../errors.ts'
import type { Queryable } from '../database.ts'

export const NAMESPACE = 'hirebase'

export interface Column {
  name: string
  type: string
}

/** Column names and PostgreSQL types of a table, in table order (IBTAB for an unknown table). */
export async function tableColumns(sql: Queryable, table: string): Promise<Column[]> {
  return [...(await sql<Column[]>`select name, type from runner.table_columns(${table})`)]
}

const AVRO_TYPES: Record<string, avro.Schema> = {
  integer: 'int',
  text: 'string',
  // Microseconds, so PostgreSQL's precision survives the round trip.
  'timestamp with time zone': { type: 'long', logicalType: 'timestamp-micros' },
}

/** The writer schema: a record named after the table, every column non-null. */
export function avroSchema(table: string, columns: Column[]): avro.Schema {
  return {
    type: 'record',
    name: table,
    namespace: NAMESPACE,
    doc: `hirebase table data.${table}`,
    fields: columns.map((c) => {
      const type = AVRO_TYPES[c.type]
      if (!type) throw new Error(`column ${table}.${c.name} has type ${c.type}, which has no Avro mapping`)
      return { name: c.name, type }
    }),
  }
}

/** Longs as BigInt: microsecond timestamps past 2^53 (year 2255) must not lose precision. */
const scratch = Buffer.alloc(8) // avsc packs the bytes at once, so one buffer serves every value
const bigLong = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    scratch.writeBigInt64LE(BigInt(n))
    return scratch
  },
  fromJSON: (n: number | string) => BigInt(n),
  toJSON: (n: bigint) => Number(n),
  isValid: (n: unknown) => typeof n === 'bigint',
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
})

/**
 * A logical type over a BigInt long (timestamp-micros, timestamp-millis): values pass
 * through as BigInt, and the logicalType attribute stays in the schema written to files.
 */
class LongLogicalType extends avro.types.LogicalType {
  _fromValue(value: bigint) {
    return value
  }
  _toValue(value: bigint) {
    return value
  }
  _resolve(type: avro.Type) {
    return type.typeName === this.typeName || type.typeName === 'long' ? (v: bigint) => v : undefined
  }
}

let wrappingLong = false

/** Every long, plain or under a logical type, is read and written as a BigInt. */
function longHook(schema: avro.Schema, opts: object): avro.Type | undefined {
  const s = schema as { type?: unknown; logicalType?: string }
  if (schema === 'long' || (s.type === 'long' && (wrappingLong || !s.logicalType))) return bigLong as avro.Type
  if (s.type === 'long' && s.logicalType) {
    wrappingLong = true // the logical type's own constructor asks us for its underlying long
    try {
      return new LongLogicalType(schema, opts as never)
    } finally {
      wrappingLong = false
    }
  }
  return undefined
}

export function avroType(schema: avro.Schema | string): avro.Type {
  return avro.Type.forSchema(typeof schema === 'string' ? JSON.parse(schema) : schema, { typeHook: longHook } as never)
}

/** How a file's field is turned into the text the staging table takes. */
export type FieldReader = (value: unknown) => string

interface AvroField {
  name: string
  type: unknown
}

function plainType(t: unknown): { type: string; logicalType?: string } {
  if (typeof t === 'string') return { type: t }
  if (t && typeof t === 'object' && !Array.isArray(t)) return t as { type: string; logicalType?: string }
  return { type: JSON.stringify(t) }
}

/**
 * Checks that a file's writer schema can fill the table: the same field names, and types
 * that convert without loss. Accepts what other tools write for a date-time: a long with
 * timestamp-micros or timestamp-millis, or an RFC 3339 string. Returns one reader per column.
 */
export function readersFor(table: string, columns: Column[], writerSchema: { type?: string; fields?: AvroField[] }): FieldReader[] {
  if (writerSchema.type !== 'record' || !Array.isArray(writerSchema.fields)) {
    throw new BackupFileError('bad_backup', `schema mismatch: the file does not hold records`)
  }
  const fields = new Map(writerSchema.fields.map((f) => [f.name, plainType(f.type)]))
  const expected = columns.map((c) => c.name)
  const extra = [...fields.keys()].filter((f) => !expected.includes(f))
  const missing = expected.filter((c) => !fields.has(c))
  if (extra.length || missing.length) {
    throw new BackupFileError(
      'bad_backup',
      `schema mismatch: the file's fields (${[...fields.keys()].join(', ')}) are not the columns of ${table} (${expected.join(', ')})`,
    )
  }
  return columns.map((c) => {
    const f = fields.get(c.name)!
    const wrong = () =>
      new BackupFileError('bad_backup', `schema mismatch: ${table}.${c.name} is ${c.type} but the file has ${JSON.stringify(f)}`)
    if (c.type === 'integer') {
      if (f.type !== 'int' && f.type !== 'long') throw wrong()
      return (v) => String(v)
    }
    if (c.type === 'text') {
      if (f.type !== 'string') throw wrong()
      return (v) => copyText(v as string, c.name)
    }
    if (c.type === 'timestamp with time zone') {
      if (f.type === 'long' && f.logicalType === 'timestamp-micros') return (v) => String(v)
      if (f.type === 'long' && f.logicalType === 'timestamp-millis') return (v) => String(BigInt(v as bigint) * 1000n)
      if (f.type === 'string') {
        return (v) => {
          // The database tells an RFC 3339 string from microseconds by its colon.
          if (!(v as string).includes(':')) throw new BackupFileError('bad_backup', `${c.name} "${v}" is not an RFC 3339 date-time`)
          return copyText(v as string, c.name)
        }
      }
      throw wrong()
    }
    throw wrong()
  })
}

/** A value of `field` in COPY's text format. */
export function copyText(value: string, field: string): string {
  // PostgreSQL text cannot hold NUL: COPY's own error would name neither the record nor the field.
  if (value.includes('\0'))
    throw new BackupFileError('bad_backup_value', `${field} holds a NUL character (U+0000), which no table can store (bad_encoding)`)
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'))
}
