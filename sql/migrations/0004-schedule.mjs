import { fileURLToPath } from 'node:url'
export const up = (sql) => sql.file(fileURLToPath(new URL('./0004-schedule.sql', import.meta.url)))
export const down = () => { throw new Error('0004 is forward-only') }
