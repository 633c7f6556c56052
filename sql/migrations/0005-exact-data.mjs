import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0005-exact-data.sql', import.meta.url)))
export const down = () => { throw new Error('0005 is forward-only') }
