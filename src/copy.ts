// COPY ... FROM STDIN fed by a stream pipeline, safe on the server's errors too.
import { pipeline } from 'node:stream/promises'
import type { Writable } from 'node:stream'
import type postgres from 'postgres'

/**
 * postgres.js never settles a COPY writable whose data the server rejects after the
 * last chunk (porsager/postgres#1173): the pipeline would hang and the transaction
 * would stay open, aborted, holding its connection. The driver still hands the error
 * to the query's `reject`, so we hook it and destroy the writable with that error;
 * the caller's sql.begin() then rolls back and releases the connection.
 */
export async function copyIn(query: postgres.PendingQuery<postgres.Row[]>, ...sources: NodeJS.ReadableStream[]): Promise<void> {
  await pipeline([...sources, await copyWritable(query)])
}

/** The COPY's writable, destroyed with the server's error when there is one; it finishes
 *  once the server has taken everything (CommandComplete). */
export async function copyWritable(query: postgres.PendingQuery<postgres.Row[]>): Promise<Writable> {
  const writable = (await query.writable()) as Writable
  const pending = query as unknown as { reject: (err: unknown) => void }
  const reject = pending.reject
  pending.reject = (err: unknown) => {
    writable.destroy(err instanceof Error ? err : new Error(String(err)))
    reject(err)
  }
  return writable
}
