import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0002-api.sql', import.meta.url)))
export const down = () => { throw new Error('0002 is forward-only') }
