// What keeps a hostile web page on the same machine away from the API: Host and Origin checks
// (DNS rebinding, cross-origin writes), bearer tokens, CORS only for listed origins.
import { createHash, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import cors from '@fastify/cors'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { answered, errorBody } from '../errors.ts'
import { REPLICA_HEADERS } from './context.ts'
import { fromOtherLocalUser, peersKnown } from './peer.ts'

/** A token from the environment: unset is undefined, blank is an error (nobody could use it). */
export function tokenFromEnv(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name]
  if (value === undefined || value === '') return undefined
  if (value.trim() === '') throw new Error(`${name} is blank: set a real token, or unset it`)
  return value
}

/** A comma-separated list from the environment, trimmed, empties dropped. */
export const listFromEnv = (value: string | undefined) =>
  (value ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)

/** A URL with its query string replaced, for logs (tokens travel in query strings too). */
export const redactUrl = (url: string) => (url.includes('?') ? `${url.slice(0, url.indexOf('?'))}?[redacted]` : url)

/** The host name and port of a Host header ([::1]:8000 included); null when it is not one. */
function parseHost(header: string | undefined): { name: string; port: string } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?$/.exec(header ?? '')
  return m ? { name: m[1].toLowerCase().replace(/\.$/, ''), port: m[2] ?? '80' } : null
}

/**
 * Whether a request's Host names this server: the address it listens on, a loopback name
 * when it listens on loopback, any IP literal when it listens on every address (an IP
 * literal cannot be rebound by DNS), with the port it listens on; or a name in ALLOWED_HOSTS
 * (with or without a port). Anything else may be a DNS-rebinding page.
 */
export function hostAllowed(header: string | undefined, listenHost: string, port: number, allowed: string[]): boolean {
  const h = parseHost(header)
  if (!h) return false
  const lower = allowed.map((a) => a.toLowerCase())
  if (lower.includes(h.name) || lower.includes(`${h.name}:${h.port}`)) return true
  if (h.port !== String(port)) return false
  const bare = h.name.replace(/^\[|\]$/g, '')
  const listen = listenHost.toLowerCase().replace(/^\[|\]$/g, '')
  if (bare === listen) return true
  if (isLoopback(listen)) return bare === 'localhost' || bare === '127.0.0.1' || bare === '::1'
  if (listen === '0.0.0.0' || listen === '::') return isIP(bare) !== 0
  return false
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

/** Refuses, before listening, what would expose writes to the network without a token. */
export function checkListenAddress(host: string, token: string | undefined): void {
  if (!isLoopback(host) && !token) {
    throw new Error(`refusing to listen on ${host} without API_TOKEN: set API_TOKEN, or HOST=127.0.0.1 for local use`)
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest()

function authorized(header: string | undefined, token: string): boolean {
  const given = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? ''
  // Equal-length digests: the comparison takes the same time whatever the token.
  return timingSafeEqual(digest(given), digest(token))
}

export interface GuardOptions {
  /** When set, POST routes require `Authorization: Bearer <token>`. */
  token?: string
  /** When set, every route but /health and /openapi.json requires this token (or `token`). */
  readToken?: string
  /** The address the server listens on (HOST): requests must name it in Host. */
  host?: string
  /** More names a request's Host may give (ALLOWED_HOSTS), e.g. behind a proxy. */
  allowedHosts?: string[]
  /** Origins (scheme://host[:port]) whose pages may write and get CORS headers (ALLOWED_ORIGINS). */
  allowedOrigins?: string[]
}

/** Where the Swagger UI lives. */
export const DOCS_PREFIX = '/docs'

/**
 * What READ_TOKEN leaves open: preflights, /health, and what holds no data (the links at /,
 * the OpenAPI document, the Swagger UI's page and files, which a browser fetches without a token).
 */
const open = (method: string, path: string) =>
  method === 'OPTIONS' ||
  (['GET', 'HEAD'].includes(method) &&
    (['/', '/health', '/openapi.json', DOCS_PREFIX].includes(path) || path.startsWith(`${DOCS_PREFIX}/`)))

/** The checks every request meets before anything else runs, on the root instance. */
export async function installGuards(app: FastifyInstance, options: GuardOptions): Promise<void> {
  const listenHost = options.host ?? '127.0.0.1'
  const allowedOrigins = options.allowedOrigins ?? []
  const tokens = [options.token, options.readToken].filter((t): t is string => Boolean(t))
  const ownerOnly = peersKnown()
  // A web page on another site must not reach the API: DNS rebinding (a Host that is not this
  // server) and cross-origin writes are refused before anything else runs.
  app.addHook('onRequest', async (request, reply) => {
    const port = (app.server.address() as { port?: number } | null)?.port ?? 0
    if (!hostAllowed(request.headers.host, listenHost, port, options.allowedHosts ?? [])) {
      return reply
        .code(421)
        .send(
          errorBody(
            answered(
              'unknown_host',
              `this server does not answer for Host "${request.headers.host ?? ''}"`,
              'use the address it listens on, or add the name to ALLOWED_HOSTS',
            ),
          ),
        )
    }
    // Another OS user of this machine gets what holds no data, and the rest with a token only.
    if (
      ownerOnly &&
      !open(request.method, request.url.split('?')[0]) &&
      !tokens.some((t) => authorized(request.headers.authorization, t)) &&
      (await fromOtherLocalUser(request.raw.socket))
    ) {
      return reply
        .code(403)
        .send(
          errorBody(
            answered(
              'other_local_user',
              tokens.length
                ? 'this connection comes from another user of this machine: send Authorization: Bearer <API_TOKEN or READ_TOKEN>'
                : `this server answers only its own OS user (uid ${process.getuid?.()}) while no API_TOKEN is set`,
              tokens.length ? undefined : 'to share it with other local users, start it with API_TOKEN (and READ_TOKEN) set',
            ),
          ),
        )
    }
    const origin = request.headers.origin
    // A page of this server (the Swagger UI at /docs): its Origin is the Host just checked, over
    // plain HTTP (what this server speaks). A rebinding page never gets here (its Host is foreign).
    const own = origin === `http://${request.headers.host}`
    if (origin !== undefined && !own && !['GET', 'HEAD', 'OPTIONS'].includes(request.method) && !allowedOrigins.includes(origin)) {
      return reply
        .code(403)
        .send(errorBody(answered('forbidden_origin', `writes from pages of ${origin} are refused`, 'list the origin in ALLOWED_ORIGINS')))
    }
    if (
      options.readToken &&
      !open(request.method, request.url.split('?')[0]) &&
      !authorized(request.headers.authorization, options.readToken) &&
      !(options.token && authorized(request.headers.authorization, options.token))
    ) {
      reply.header('www-authenticate', 'Bearer')
      return reply
        .code(401)
        .send(
          errorBody(
            answered(
              'unauthorized',
              'this server needs Authorization: Bearer <READ_TOKEN or API_TOKEN> for every route but /, /health, /openapi.json and /docs',
            ),
          ),
        )
    }
  })
  // CORS headers only for the listed origins (none by default).
  // Their pages may read a write's WAL position, and who answered (docs/scale-out.md, "Read replicas").
  await app.register(cors, {
    origin: (origin, cb) => cb(null, origin !== undefined && allowedOrigins.includes(origin)),
    methods: ['GET', 'HEAD', 'POST'],
    exposedHeaders: [REPLICA_HEADERS.lsn, REPLICA_HEADERS.servedBy],
  })
  // Bodies are JSON (or CSV, for ingest only): no text/plain, which a page may send anywhere.
  app.removeContentTypeParser('text/plain')
}

/** The preHandler of writes: `Authorization: Bearer <API_TOKEN>` when a token is set. */
export function tokenCheck(token: string | undefined) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (token && !authorized(request.headers.authorization, token)) {
      reply.header('www-authenticate', 'Bearer')
      return reply.code(401).send(errorBody(answered('unauthorized', 'this route needs Authorization: Bearer <API_TOKEN>')))
    }
  }
}
