import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0008-caps.sql', import.meta.url)))
export const down = () => { throw new Error('0008 is forward-only') }
