import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0001-core.sql', import.meta.url)))
export const down = () => { throw new Error('0001 is forward-only') }
