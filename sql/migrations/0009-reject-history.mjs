import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0009-reject-history.sql', import.meta.url)))
export const down = () => { throw new Error('0009 is forward-only') }
