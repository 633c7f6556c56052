// internal.compile_ingest names each table's functions ingest_<table>_json and _csv. A table
// name of 56 bytes or more makes both names longer than PostgreSQL's 63-byte identifiers:
// truncated, they are one function, and a JSON batch ran the CSV statement.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { freshDatabase } from '../support.ts'

const db = await freshDatabase()
const { sql } = db

test('a table with a long name (up to 63 bytes) gets its own JSON and CSV functions, and a valid row goes in', async () => {
  for (const name of [`t_${'a'.repeat(52)}`, `t_${'b'.repeat(58)}`, `t_${'c'.repeat(61)}`]) {
    await sql.unsafe(`create table data.${name} (id integer primary key, name text not null)`)
    await sql`insert into data.dictionary_tables (table_name, key_field, load_order) values (${name}, 'id', ${100 + name.length})`
    await sql`insert into data.dictionary_fields (table_name, field, ordinal, kind, max_length, description)
              values (${name}, 'id', 1, 'id', null, 'id'), (${name}, 'name', 2, 'name', 10, 'name')`
    const [r] = await sql`call api.ingest_batch(${name}, ${'[{"id": 1, "name": "ok"}]'}::text)`
    const reasons = await sql`select reasons from data.ingest_rejects where batch_id = ${r.batch_id}`
    assert.deepEqual([r.inserted, reasons.map((x) => x.reasons)], [1, []], `${name.length} bytes`)
  }
})
