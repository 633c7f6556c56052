import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0007-reject-dedupe.sql', import.meta.url)))
export const down = () => { throw new Error('0007 is forward-only') }
