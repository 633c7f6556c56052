// Without a token, the loopback API belongs to the OS user who started it: on a shared machine
// another account could otherwise ingest, replay, back up and restore (roll a table back), or
// read every employee. Linux says who owns the other end of a loopback TCP connection: the
// client's socket is a line of /proc/net/tcp (tcp6), with its uid. Elsewhere nothing can be
// known, and the server's start-up line says that every local user may call it.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { isIPv4 } from 'node:net'
import { endianness, networkInterfaces } from 'node:os'
import type { Socket } from 'node:net'

const TABLES = ['/proc/net/tcp', '/proc/net/tcp6']

let known: boolean | undefined
/** Whether this system tells the owner of a loopback connection's client socket (asked once: the
 *  OpenAPI errors of every read route ask, and reading the table costs ~20 ms on a busy machine). */
export const peersKnown = (): boolean => (known ??= existsSync(TABLES[0]))

/** An address as /proc/net/tcp{,6} writes it: 32-bit words in host byte order, upper-case hex. */
function procHex(bytes: number[]): string {
  let out = ''
  for (let w = 0; w < bytes.length; w += 4) {
    const word = bytes.slice(w, w + 4)
    if (endianness() === 'LE') word.reverse()
    out += word.map((b) => b.toString(16).padStart(2, '0')).join('')
  }
  return out.toUpperCase()
}

/** The bytes of an IP address, an IPv4 one as IPv4-mapped IPv6 (::ffff:a.b.c.d) too. */
function ipBytes(ip: string): number[][] {
  const v4 = ip.replace(/^::ffff:/i, '')
  if (isIPv4(v4)) {
    const b = v4.split('.').map(Number)
    return [b, [...Array(10).fill(0), 0xff, 0xff, ...b]]
  }
  // IPv6: expand "::" and read each group as two bytes.
  const [head, tail = ''] = ip.split('::')
  const groups = (s: string) => (s ? s.split(':') : [])
  const h = groups(head)
  const t = groups(tail)
  const all = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h
  return [all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])]
}

// One read of the tables at a time, shared by every lookup that began before it started: each
// read costs the kernel ~20 ms when the machine has ~19,000 TCP sockets (TIME_WAIT included), and
// a synchronous read per new connection held the event loop that long (about 90 new connections
// per second for the whole server). A lookup never uses a read that began before it did: the
// client's socket might not be listed yet, or an older socket with its address and port might.
let running: Promise<unknown> = Promise.resolve()
let queued: Promise<string[]> | undefined
let reads = 0
/** How many times the tables were read (for the test that they are shared). */
export const socketTableReads = () => reads
function freshTables(): Promise<string[]> {
  queued ??= running.then(() => {
    queued = undefined
    reads++
    const read = Promise.all(TABLES.map((table) => readFile(table, 'latin1').catch(() => '')))
    running = read
    return read
  })
  return queued
}

interface End {
  address: string
  port: number
}

/**
 * The uid owning the client end of a TCP connection between `client` and `server`; undefined when
 * no such socket is listed (the client is on another machine or network namespace, or has closed
 * it).
 */
export async function clientSocketOwner(client: End, server: End): Promise<number | undefined> {
  const port = (p: number) => p.toString(16).toUpperCase().padStart(4, '0')
  const c = ipBytes(client.address)
  const s = ipBytes(server.address)
  // The client's line: its own address and port, then the server's (IPv4 in tcp, the rest in tcp6).
  const keys = c.map((bytes, i) => ` ${procHex(bytes)}:${port(client.port)} ${procHex(s[i] ?? [])}:${port(server.port)} `)
  for (const text of await freshTables()) {
    for (const key of keys) {
      for (let at = text.indexOf(key); at >= 0; at = text.indexOf(key, at + 1)) {
        // sl local remote st tx:rx tr:when retrnsmt uid timeout inode
        const f = text.slice(at, text.indexOf('\n', at)).trim().split(/\s+/)
        // No inode: its process has closed it (TIME_WAIT is listed as uid 0, which a server run as
        // root took for its own user: a client that sent a write and closed at once was served).
        if (f.length >= 9 && f[8] !== '0') return Number(f[6])
      }
    }
  }
  return undefined
}

/**
 * Whether a client address is this machine's: loopback, the server's own address, or any of its
 * interfaces' (a local client may bind eth0's address and connect to 127.0.0.1: checking loopback
 * peers only let such a connection through as "another machine's").
 */
function isOwnAddress(ip: string, serverIp: string | undefined): boolean {
  if (/^(::ffff:)?127\./i.test(ip) || ip === '::1' || ip === serverIp) return true
  const bare = ip
    .replace(/^::ffff:/i, '')
    .replace(/%.*$/, '')
    .toLowerCase()
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.address.toLowerCase() === bare))
}

const owners = new WeakMap<Socket, Promise<boolean>>()

/**
 * Whether a request's connection comes from another OS user of this machine (known once per
 * connection). A connection from another machine is not: tokens and the Host check govern it.
 * A client at an address of this machine whose socket cannot be found counts as another user
 * (refused, not trusted).
 */
export function fromOtherLocalUser(socket: Socket): Promise<boolean> {
  let other = owners.get(socket)
  if (other === undefined) {
    const client = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
    const server = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 }
    other = isOwnAddress(client.address, server.address)
      ? clientSocketOwner(client, server).then((uid) => uid !== process.getuid?.())
      : Promise.resolve(false)
    owners.set(socket, other)
  }
  return other
}
