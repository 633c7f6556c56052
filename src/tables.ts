// The toolkit's tables as the database names them (runner.load_order): loads, backups and
// restores all go in this order, departments and jobs before employees.
import type { Queryable } from './database.ts'

/** The tables (all, or those named: IBTAB for an unknown one) in the order they must be loaded: departments and jobs before employees. */
export async function tablesInLoadOrder(sql: Queryable, tables: string[] | null = null): Promise<string[]> {
  return (await sql<{ table: string }[]>`select t as table from runner.load_order(${tables}) t`).map((r) => r.table)
}
