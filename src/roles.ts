// How the API server logs in: as this database's login role (sql/procedures/010-roles.sql),
// a member of the API role only, never as the owner. The owner's URL is used for the runner's
// fixed statements (backups, restores, the backup queue) and to set the login role's password.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect, type Queryable } from './database.ts'
import { projectRoot } from './paths.ts'

export interface ApiRoles {
  database: string
  owner: string
  api: string
  login: string
}

/** This database's role names (the rule is in SQL, in one place). */
export async function apiRoles(sql: Queryable): Promise<ApiRoles> {
  const [r] = await sql<ApiRoles[]>`
    select current_database() as database, pg_get_userbyid(d.datdba) as owner,
           internal.api_role() as api, internal.api_login_role() as login
      from pg_database d where d.datname = current_database()`
  return r
}

/** A SCRAM-SHA-256 verifier (RFC 7677), so the password itself never reaches the server's log. */
export function scramVerifier(password: string, iterations = 4096): string {
  const salt = randomBytes(16)
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}

export interface ApiConnection {
  /** The URL the API's pool connects with. */
  url: string
  /** Only in the SET ROLE fallback: the role to switch to after logging in as the owner. */
  role?: string
  roles: ApiRoles
  /** How it logs in, for the start-up line; a warning when it is the fallback. */
  how: string
  warning?: string
}

const quoteIdent = (s: string) => `"${s.replaceAll('"', '""')}"`

/**
 * The API's connection. API_DATABASE_URL when given (checked: a member of this database's API
 * role, not its owner, not a superuser). Otherwise the owner sets the login role's password
 * (on the embedded default the one kept in .pgdata/api-password; with DATABASE_URL one
 * derived from the owner's password, or a new one per start without one) and the API logs
 * in with it. If the owner may not, the API logs in as the owner and SETs ROLE, with a
 * warning: RESET ROLE would undo that.
 */
export async function apiConnection(ownerUrl: string, options: { apiUrl?: string; passwordFile?: string } = {}): Promise<ApiConnection> {
  const owner = connect(ownerUrl, { max: 1 })
  try {
    const roles = await apiRoles(owner)
    if (options.apiUrl) {
      const api = connect(options.apiUrl, { max: 1 })
      try {
        const [me] = await api<{ user: string; database: string; member: boolean; superuser: boolean; owner: boolean }[]>`
          select current_user as user, current_database() as database, pg_has_role(current_user, ${roles.api}, 'usage') as member,
                 (select rolsuper from pg_roles where rolname = current_user) as superuser,
                 pg_has_role(current_user, ${roles.owner}, 'usage') as owner`
        if (me.database !== roles.database)
          throw new Error(`API_DATABASE_URL names the database ${me.database}, DATABASE_URL ${roles.database}: they must be the same`)
        if (me.superuser || me.owner)
          throw new Error(
            `API_DATABASE_URL logs in as ${me.user}, which is (or acts as) the owner ${roles.owner}: give the API a role of its own, a member of ${roles.api} only`,
          )
        if (!me.member)
          throw new Error(
            `API_DATABASE_URL logs in as ${me.user}, which is not a member of ${roles.api}: GRANT ${quoteIdent(roles.api)} TO ${quoteIdent(me.user)}`,
          )
        return { url: options.apiUrl, roles, how: `as ${me.user} (API_DATABASE_URL)` }
      } finally {
        await api.end()
      }
    }
    // Derived from the owner's password, so every server started with the same DATABASE_URL
    // sets the same one (a new one per start would lock out a second server's new sessions);
    // knowing it gives nothing the owner's password does not. Random without one.
    const ownerPassword = decodeURIComponent(new URL(ownerUrl).password)
    let password = ownerPassword
      ? createHmac('sha256', ownerPassword).update(`hirebase api login\0${roles.login}`).digest('base64url')
      : randomBytes(24).toString('base64url')
    if (options.passwordFile) {
      if (!existsSync(options.passwordFile)) await writeFile(options.passwordFile, password, { mode: 0o600, flag: 'wx' }).catch(() => {})
      password = (await readFile(options.passwordFile, 'utf8')).trim()
    }
    const url = new URL(ownerUrl)
    url.username = encodeURIComponent(roles.login)
    url.password = encodeURIComponent(password)
    // Set already (an earlier start, or another server on this database): nothing to change.
    const loginWorks = async () => {
      const probe = connect(url.toString(), { max: 1, connect_timeout: 5 })
      return probe`select 1`
        .then(
          () => true,
          () => false,
        )
        .finally(() => probe.end())
    }
    if (await loginWorks()) return { url: url.toString(), roles, how: `as ${roles.login}` }
    try {
      // One server at a time, asking again once it has the lock: two servers starting together
      // on a new database both found the password unset, and the second ALTER ROLE failed with
      // "tuple concurrently updated" (XX000), ending that server.
      await owner.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('hirebase.api_login'), hashtext(${roles.login}))`
        if (!(await loginWorks())) await tx.unsafe(`alter role ${quoteIdent(roles.login)} with login password '${scramVerifier(password)}'`)
      })
    } catch (err) {
      if ((err as { code?: string }).code !== '42501') throw err
      const warning =
        `WARNING: the owner ${roles.owner} may not set the password of ${roles.login}, so the API logs in as the owner ` +
        `and only switches to ${roles.api} with SET ROLE, which RESET ROLE undoes. Set API_DATABASE_URL to a login role that is ` +
        `a member of ${roles.api} only (or grant the owner CREATEROLE).`
      return { url: ownerUrl, role: roles.api, roles, how: `as the owner ${roles.owner}, SET ROLE ${roles.api}`, warning }
    }
    return { url: url.toString(), roles, how: `as ${roles.login}` }
  } finally {
    await owner.end()
  }
}

/** The embedded default keeps the API's password beside the superuser's. */
export const embeddedApiPasswordFile = () => join(projectRoot, '.pgdata', 'api-password')
