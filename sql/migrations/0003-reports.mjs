import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0003-reports.sql', import.meta.url)))
export const down = () => { throw new Error('0003 is forward-only') }
