import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0006-reject-dedupe.sql', import.meta.url)))
export const down = () => { throw new Error('0006 is forward-only') }
