// Without a token, the loopback API belongs to the OS user who started it: on a shared machine
// another account could otherwise ingest, replay, back up and restore (roll a table back), or
// read every employee. Linux says who owns the other end of a loopback TCP connection: the
// client's socket is a line of /proc/net/tcp (tcp6), with its uid. Elsewhere nothing can be
// known, and the server's start-up line says that every local user may call it.
import { readFileSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import { endianness, networkInterfaces } from 'node:os'
import type { Socket } from 'node:net'

const TABLES = ['/proc/net/tcp', '/proc/net/tcp6']

/** Whether this system tells the owner of a loopback connection's client socket. */
export const peersKnown = (): boolean => {
  try {
    readFileSync(TABLES[0])
    return true
  } catch {
    return false
  }
}

/** An address of /proc/net/tcp{,6} (32-bit words in host byte order, hex) as bytes. */
function addressBytes(hex: string): number[] {
  const bytes: number[] = []
  for (let w = 0; w < hex.length; w += 8) {
    const word = [0, 2, 4, 6].map((i) => parseInt(hex.slice(w + i, w + i + 2), 16))
    bytes.push(...(endianness() === 'LE' ? word.reverse() : word))
  }
  return bytes
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

const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i])

/**
 * The uid owning the client end of a TCP connection whose client is at `clientIp:clientPort` and
 * whose server port is `serverPort`; undefined when no such socket is listed (the client is on
 * another machine or network namespace, or has closed it).
 */
export function clientSocketOwner(clientIp: string, clientPort: number, serverPort: number): number | undefined {
  const candidates = ipBytes(clientIp)
  for (const table of TABLES) {
    let text: string
    try {
      text = readFileSync(table, 'latin1')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // No inode: its process has closed it (TIME_WAIT is listed as uid 0, which a server run as
      // root took for its own user: a client that sent a write and closed at once was served).
      if (f.length < 10 || f[9] === '0') continue
      const [localIp, localPort] = f[1].split(':')
      const remotePort = f[2].split(':')[1]
      if (parseInt(localPort, 16) !== clientPort || parseInt(remotePort, 16) !== serverPort) continue
      const local = addressBytes(localIp)
      if (candidates.some((c) => same(c, local))) return Number(f[7])
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

const owners = new WeakMap<Socket, boolean>()

/**
 * Whether a request's connection comes from another OS user of this machine (known once per
 * connection). A connection from another machine is not: tokens and the Host check govern it.
 * A client at an address of this machine whose socket cannot be found counts as another user
 * (refused, not trusted).
 */
export function fromOtherLocalUser(socket: Socket): boolean {
  const known = owners.get(socket)
  if (known !== undefined) return known
  const ip = socket.remoteAddress ?? ''
  const other =
    isOwnAddress(ip, socket.localAddress) && clientSocketOwner(ip, socket.remotePort ?? 0, socket.localPort ?? 0) !== process.getuid?.()
  owners.set(socket, other)
  return other
}
