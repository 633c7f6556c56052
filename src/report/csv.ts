// Report rows as CSV for people: the report files and the API's ?format=csv.

/**
 * A text cell starting with =, +, -, @, tab or CR would be run as a formula by a spreadsheet:
 * it gets a leading ' (OWASP's advice on CSV injection). Numbers are left as they are; JSON
 * and Avro keep every value raw.
 */
export function toCsv(rows: object[], columns: string[]): string {
  const cell = (v: unknown) => {
    const s = typeof v === 'string' && /^[=+\-@\t\r]/.test(v) ? `'${v}` : String(v ?? '')
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
  }
  return (
    [columns.join(','), ...rows.map((r) => columns.map((c) => cell((r as Record<string, unknown>)[c])).join(','))].join('\r\n') + '\r\n'
  )
}
