// Routes over backups: back a table up, list its backups, restore it. The runner (the owner's
// pool) writes and reads the files; the database locks, stages and swaps.
import type { FastifyPluginAsync } from 'fastify'
import { listBackups } from '../backup/folders.ts'
import { restoreTables } from '../backup/restore.ts'
import { backupTable } from '../backup/write.ts'
import type { ApiContext } from './context.ts'
import { anyObject, tableOnly } from './schemas.ts'

export const backupRoutes: FastifyPluginAsync<ApiContext> = async (
  app,
  { sql, runner, limits, backups, requireToken, security, readSecurity, readErrors, writeErrors },
) => {
  const backupsRunning = new Set<string>()

  app.post<{ Params: { table: string } }>(
    '/tables/:table/backup',
    {
      preHandler: requireToken,
      schema: {
        summary: 'Back up a table to an Avro file',
        operationId: 'backupTable',
        tags: ['backup'],
        security,
        params: tableOnly,
        response: {
          201: {
            type: 'object',
            properties: {
              table: { type: 'string' },
              file: { type: 'string' },
              path: { type: 'string', description: 'relative to BACKUP_DIR/<database>' },
              rows: { type: 'integer' },
              bytes: { type: 'integer' },
              sha256: { type: 'string' },
            },
          },
          ...writeErrors(404, 429, 500, 507),
        },
      },
      config: { unbounded: true },
    },
    async (request, reply) => {
      const { table } = request.params
      // One backup per table and a few in all: each holds a connection for as long as it runs.
      if (backupsRunning.has(table) || backupsRunning.size >= limits.backupConcurrency) {
        throw Object.assign(
          new Error(
            backupsRunning.has(table)
              ? `a backup of ${table} is already running: try again when it is done`
              : `${backupsRunning.size} backups are already running (BACKUP_CONCURRENCY): try again shortly`,
          ),
          { code: 'BACKUP_BUSY' },
        )
      }
      backupsRunning.add(table)
      const r = await backupTable(runner, table, backups).finally(() => backupsRunning.delete(table))
      request.batchLog = { file: r.file, rows: r.rows }
      return reply.code(201).send({ table: r.table, file: r.file, path: r.file, rows: r.rows, bytes: r.bytes, sha256: r.sha256 })
    },
  )

  app.get<{ Params: { table: string } }>(
    '/tables/:table/backups',
    {
      schema: {
        summary: "A table's backups, newest first, then its pre-restore snapshots",
        operationId: 'listBackups',
        tags: ['backup'],
        security: readSecurity,
        params: tableOnly,
        response: { 200: { type: 'array', items: anyObject }, ...readErrors(400, 404) },
      },
    },
    async (request) => {
      await sql`select api.check_table(${request.params.table})` // 404 for an unknown table
      return listBackups(backups.dir, request.params.table)
    },
  )

  app.post<{ Params: { table: string }; Body: { file?: string; newest?: true; dry_run?: boolean } }>(
    '/tables/:table/restore',
    {
      preHandler: requireToken,
      schema: {
        summary: 'Restore a table from a file named in the list, or from its newest backup with {"newest": true}',
        operationId: 'restoreTable',
        tags: ['backup'],
        security,
        params: tableOnly,
        // A restore says what it restores: a bodiless POST (which any page can send) restores nothing.
        body: {
          type: 'object',
          properties: {
            file: {
              type: 'string',
              pattern: '^(pre-restore/)?[0-9A-Za-z._-]+\\.avro$',
              description: 'a file from GET /tables/{table}/backups',
            },
            newest: { type: 'boolean', enum: [true], description: 'restore the newest backup' },
            dry_run: { type: 'boolean', default: false },
          },
          oneOf: [{ required: ['file'] }, { required: ['newest'] }],
          additionalProperties: false,
        },
        response: { 200: anyObject, ...writeErrors(404, 409, 422, 500, 507) },
      },
      config: { unbounded: true },
    },
    async (request) => {
      const { table } = request.params
      const result = await restoreTables(runner, [table], {
        ...backups,
        files: { [table]: request.body.file },
        namesOnly: true,
        dryRun: request.body.dry_run,
      })
      request.batchLog = { ...result.tables[0] }
      return { dry_run: result.dryRun, ...result.tables[0] }
    },
  )
}
