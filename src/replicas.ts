// Read replicas (DATABASE_REPLICA_URLS): hot standbys answer the read routes, in turn, while they
// keep up (REPLICA_MAX_LAG); the primary answers everything else, and the reads when no replica
// is usable. Lag is measured against the primary's WAL position, sampled on every probe, so an
// idle primary does not make its standbys look late. Every probe runs on an unref'd timer, one
// round at a time, never faster than the probe interval, and stops when the server closes.
// Long, as one file: the routing, the probes and the lag they measure share one state per replica.
import { AsyncLocalStorage } from 'node:async_hooks'
import type postgres from 'postgres'
import { connect, describeDatabase, onServer, type Sql } from './database.ts'
import { settingFromEnv, wholeFromEnv } from './env.ts'
import { gate, type Gate } from './api/limits.ts'
import { listFromEnv } from './api/guard.ts'
import { UNAVAILABLE } from './errors.ts'

export interface ReplicaSettings {
  /** The standbys' URLs: their host(s), port(s) and parameters; the API logs in as on the primary. */
  urls: string[]
  /** A replica whose replay is further behind the primary than this (seconds) leaves the rotation. */
  maxLagSeconds: number
  /** How long a read carrying a WAL position waits for a replica to replay that far before the primary answers it. */
  waitMs: number
  /** How often the primary's position and each replica's replay are read (tests shorten it). */
  probeMs?: number
}

export function replicaSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): ReplicaSettings {
  const urls = listFromEnv(env.DATABASE_REPLICA_URLS)
  urls.forEach((url, i) => {
    // Refused at start, named by its place (not echoed: it may hold a password).
    try {
      describeDatabase(url)
    } catch {
      throw new Error(`DATABASE_REPLICA_URLS: URL ${i + 1} is not a postgres:// URL`)
    }
  })
  return {
    urls,
    maxLagSeconds: settingFromEnv(
      'REPLICA_MAX_LAG',
      5,
      (text) => (/^[0-9]{1,9}(\.[0-9]{1,6})?$/.test(text) ? Number(text) : undefined),
      'a number >= 0 (seconds; a fraction allowed)',
      env,
    ),
    waitMs: wholeFromEnv('REPLICA_WAIT_MS', 50, { min: 0 }, env),
  }
}

// ---- WAL positions (pg_lsn: two hex numbers of up to 8 digits, e.g. 0/16B3748) ----
const LSN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/

/** A WAL position as PostgreSQL writes it; null when `text` is not one. */
export function parseLsn(text: string): bigint | null {
  const m = LSN.exec(text)
  return m ? (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`) : null
}

export const formatLsn = (lsn: bigint) => `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`

/** Where a request's statements run: the primary or one replica, with its own share of connections. */
export interface Target {
  name: string
  sql: Sql
  requests: Gate
}

type State = 'starting' | 'ok' | 'lagging' | 'down' | 'promoted'

interface Replica extends Target {
  server: string
  probeUrl: string
  probe?: Sql
  state: State
  replayLsn: bigint | null
  lagSeconds: number | null
  paused: boolean | null
  error?: string
  checkedAt?: Date
  failures: number
  nextProbeAt: number
}

/** Errors after which a read is tried again on the primary: the replica is gone, or cancelled the
 *  query to go on replaying (a recovery conflict, 40001). */
export function replicaFailed(err: unknown): boolean {
  const code = String((err as { code?: string })?.code ?? '')
  return UNAVAILABLE.includes(code) || code.startsWith('08') || code === '40001'
}

const PROBE_QUERY_MS = 900

export class ReplicaSet {
  readonly primary: Target
  readonly replicas: Replica[]
  /** The pool a request's statements run on (set per request by src/api/hooks.ts). */
  readonly store = new AsyncLocalStorage<Sql>()
  readonly settings: Required<ReplicaSettings>
  /** The primary's flushed WAL position over the last minute or so: the clock replicas' lag is read on. */
  private samples: { at: number; lsn: bigint }[] = []
  private primaryProbe: { probe?: Sql } = {}
  private primaryError?: string
  private primaryFailures = 0
  private timer?: NodeJS.Timeout
  private ticking?: Promise<void>
  private closed = false
  private turn = 0

  constructor(
    primary: Target,
    private apiUrl: string,
    settings: ReplicaSettings,
    private poolOptions: postgres.Options<{}>,
    poolSize: number,
    private log: (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void = () => {},
  ) {
    this.primary = primary
    this.settings = { probeMs: 1000, ...settings }
    this.replicas = settings.urls.map((url, i) => ({
      name: `replica-${i + 1}`,
      server: describeDatabase(url),
      probeUrl: onServer(apiUrl, url),
      sql: connect(onServer(apiUrl, url), poolOptions),
      requests: gate(poolSize),
      state: 'starting',
      replayLsn: null,
      lagSeconds: null,
      paused: null,
      failures: 0,
      nextProbeAt: 0,
    }))
  }

  /** Reads every replica once (within a second or two), then keeps reading them on a timer. */
  async start(): Promise<void> {
    if (!this.replicas.length) return
    await this.tick()
    this.schedule()
  }

  private schedule(): void {
    if (this.closed) return
    this.timer = setTimeout(() => {
      this.ticking = this.tick()
        .catch(() => {})
        .finally(() => {
          this.ticking = undefined
          this.schedule()
        })
    }, this.settings.probeMs)
    this.timer.unref()
  }

  /** One query on a probe connection of its own, answered within PROBE_QUERY_MS or dropped. */
  private async ask<T>(holder: { probe?: Sql }, url: string, query: (s: Sql) => Promise<T>): Promise<T> {
    const probe = (holder.probe ??= connect(url, {
      max: 1,
      connect_timeout: 1,
      idle_timeout: 30,
      connection: { application_name: 'hirebase-replica-probe', statement_timeout: String(PROBE_QUERY_MS) } as Record<string, string>,
    }))
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_QUERY_MS} ms`)), PROBE_QUERY_MS)
    })
    const answer = query(probe)
    try {
      return await Promise.race([answer, late])
    } catch (err) {
      // A lost or frozen connection is dropped: the next probe starts afresh.
      answer.catch(() => {})
      if (holder.probe === probe) holder.probe = undefined
      void probe.end({ timeout: 0 }).catch(() => {})
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  private async tick(): Promise<void> {
    const now = Date.now()
    try {
      const [{ lsn }] = await this.ask(
        this.primaryProbe,
        this.apiUrl,
        (s) => s<{ lsn: string }[]>`select pg_current_wal_flush_lsn()::text as lsn`,
      )
      this.samples.push({ at: now, lsn: parseLsn(lsn)! })
      const keep = now - Math.max(60, 3 * this.settings.maxLagSeconds) * 1000
      while (this.samples.length > 1 && this.samples[0].at < keep) this.samples.shift()
      this.primaryError = undefined
      this.primaryFailures = 0
    } catch (err) {
      this.primaryError = (err as Error).message
      this.primaryFailures++
    }
    await Promise.all(this.replicas.filter((r) => r.nextProbeAt <= now && !this.closed).map((r) => this.probe(r, now)))
  }

  private async probe(r: Replica, now: number): Promise<void> {
    const before = r.state
    try {
      const [row] = await this.ask(
        r,
        r.probeUrl,
        (s) => s<{ standby: boolean; lsn: string | null; paused: boolean | null }[]>`
        select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as lsn,
               case when pg_is_in_recovery() then pg_is_wal_replay_paused() end as paused`,
      )
      r.checkedAt = new Date()
      r.failures = 0
      r.nextProbeAt = 0
      r.paused = row.paused
      if (!row.standby) {
        r.state = 'promoted'
        r.error = 'no longer a standby (promoted?): out of the rotation; point DATABASE_URL at it if it is the new primary'
        r.lagSeconds = null
      } else {
        const replayed = row.lsn ? parseLsn(row.lsn)! : 0n
        if (r.replayLsn === null || replayed > r.replayLsn) r.replayLsn = replayed
        r.lagSeconds = this.lagOf(r.replayLsn, now)
        r.state = r.lagSeconds > this.settings.maxLagSeconds ? 'lagging' : 'ok'
        r.error =
          r.state === 'lagging'
            ? `replay is ${r.lagSeconds.toFixed(1)} s behind the primary (REPLICA_MAX_LAG is ${this.settings.maxLagSeconds})`
            : undefined
      }
    } catch (err) {
      this.down(r, err)
    }
    if (r.state !== before && !this.closed)
      this.log(r.state === 'ok' ? 'info' : 'warn', `${r.name} is ${r.state}`, { replica: r.name, server: r.server, error: r.error })
  }

  /** How long the primary has had WAL this replica has not replayed (to within a probe interval). */
  private lagOf(replayed: bigint, now: number): number {
    const first = this.samples.find((s) => s.lsn > replayed)
    return first ? Math.max(0, (now - first.at) / 1000) : 0
  }

  /** Takes a replica out until a probe finds it again; probes back off to 8 intervals. */
  down(r: Target, err: unknown): void {
    const replica = this.replicas.find((x) => x === r)
    if (!replica) return
    replica.state = 'down'
    replica.error = (err as Error)?.message ?? String(err)
    replica.lagSeconds = null
    replica.failures++
    replica.nextProbeAt = Date.now() + Math.min(2 ** replica.failures, 8) * this.settings.probeMs
  }

  /**
   * Where a read runs: the next replica in the rotation; with `minLsn`, only one that has replayed
   * that far, waiting up to REPLICA_WAIT_MS for one; otherwise the primary.
   */
  async pick(minLsn?: bigint): Promise<Target> {
    const usable = this.replicas.filter((r) => r.state === 'ok')
    if (!usable.length) return this.primary
    const start = this.turn++ % usable.length
    const order = [...usable.slice(start), ...usable.slice(0, start)]
    if (minLsn === undefined) return order[0]
    const known = order.find((r) => r.replayLsn !== null && r.replayLsn >= minLsn)
    if (known || this.settings.waitMs === 0) return known ?? this.primary
    const deadline = Date.now() + this.settings.waitMs
    for (;;) {
      const left = deadline - Date.now()
      const replayed = await Promise.all(order.map((r) => this.replayed(r, Math.max(left, 10))))
      const ready = order.find((_, i) => replayed[i] !== null && replayed[i]! >= minLsn)
      if (ready) return ready
      if (deadline - Date.now() <= 0 || this.closed) return this.primary
      await new Promise((resolve) => setTimeout(resolve, Math.min(10, deadline - Date.now())))
    }
  }

  /** A replica's replay position now (on its pool), or null when it does not say within `ms`. */
  private async replayed(r: Replica, ms: number): Promise<bigint | null> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), ms)
    })
    const query = r.sql<{ lsn: string | null }[]>`select pg_last_wal_replay_lsn()::text as lsn`.then(
      ([row]) => (row.lsn ? parseLsn(row.lsn) : null),
      () => null,
    )
    try {
      const lsn = await Promise.race([query, late])
      if (lsn !== null && (r.replayLsn === null || lsn > r.replayLsn)) r.replayLsn = lsn
      return lsn
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * The WAL position a client may ask a later read to have seen, read after the write's commit
   * returned: the primary's flush position. With synchronous_commit on (or local, remote_*) a
   * commit returns only once its record is flushed, so this is at or past it, and a standby can
   * reach it at once (walsenders send flushed WAL only). With synchronous_commit = off the commit
   * may not be flushed yet: then the insert position, which is always past it but may wait for the
   * WAL writer (and, right after a page boundary, for the next record) before a standby reaches it.
   * Null when the primary does not say.
   */
  async commitLsn(): Promise<string | null> {
    try {
      return (
        await this.primary.sql<{ lsn: string }[]>`
        select (case when current_setting('synchronous_commit') = 'off' then pg_current_wal_insert_lsn()
                     else pg_current_wal_flush_lsn() end)::text as lsn`
      )[0].lsn
    } catch {
      return null
    }
  }

  /** Two probes of the primary in a row failed: requests for it are refused at once (503), not left to hang. */
  get primaryDown(): boolean {
    return this.primaryFailures >= 2
  }

  /** What /health shows: each replica's state and lag, never its credentials. */
  health() {
    return {
      max_lag_seconds: this.settings.maxLagSeconds,
      primary_lsn: this.samples.length ? formatLsn(this.samples[this.samples.length - 1].lsn) : null,
      ...(this.primaryError ? { primary_error: this.primaryError } : {}),
      replicas: this.replicas.map((r) => ({
        name: r.name,
        server: r.server,
        state: r.state,
        in_rotation: r.state === 'ok',
        lag_seconds: r.lagSeconds === null ? null : Math.round(r.lagSeconds * 10) / 10,
        replay_lsn: r.replayLsn === null ? null : formatLsn(r.replayLsn),
        replay_paused: r.paused,
        checked_at: r.checkedAt?.toISOString() ?? null,
        ...(r.error ? { error: r.error } : {}),
        pool: { size: r.requests.size, in_use: r.requests.used, waiting: r.requests.waiting },
      })),
    }
  }

  get inRotation(): number {
    return this.replicas.filter((r) => r.state === 'ok').length
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
    await this.ticking
    await Promise.all(
      [this.primaryProbe.probe, ...this.replicas.flatMap((r) => [r.probe, r.sql])].map((s) => s?.end({ timeout: 1 }).catch(() => {})),
    )
  }
}

/**
 * A pool that runs each statement where the request was routed (ReplicaSet.store), on the primary
 * outside a request: the route handlers keep their one `sql`.
 */
export function routedSql(set: ReplicaSet): Sql {
  const current = () => set.store.getStore() ?? set.primary.sql
  return new Proxy(set.primary.sql, {
    apply: (_target, self, args) => Reflect.apply(current(), self, args),
    get: (_target, key) => {
      const sql = current()
      const value = Reflect.get(sql, key)
      return typeof value === 'function' ? value.bind(sql) : value
    },
  })
}
