// The files the toolkit writes (backups, pre-restore snapshots, reports): mode 0600 in
// folders of mode 0700 unless FILE_MODE relaxes it, each written through a temporary file
// created with O_EXCL|O_NOFOLLOW (a planted file or symlink is an error, never followed),
// then renamed into place (rename replaces a symlink at the final name, never writes through it).
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { lstat, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join, resolve, sep } from 'node:path'
import { settingFromEnv } from './env.ts'

/** FILE_MODE (octal, e.g. 0640 or 644): the mode of files written; default 0600. */
export function fileMode(env: NodeJS.ProcessEnv = process.env): number {
  return settingFromEnv(
    'FILE_MODE',
    0o600,
    (text) => {
      const mode = /^0?[0-7]{3}$/.test(text) ? parseInt(text, 8) : 0
      return (mode & 0o600) === 0o600 && !(mode & 0o111) ? mode : undefined
    },
    'an octal file mode that lets the owner read and write, without execute bits (such as 0600, 0640 or 0644)',
    env,
  )
}

/** The folders' mode: the file mode plus x wherever r is (0600 -> 0700, 0640 -> 0750). */
export const folderMode = (mode = fileMode()) => mode | ((mode & 0o444) >> 2)

/**
 * Makes sure `dir` is a folder (created with the folder mode, parents included), not a symlink,
 * ours (or root's), and not writable by others (where anyone could plant or swap files), unless `force`.
 */
export async function outputFolder(dir: string, options: { force?: boolean } = {}): Promise<void> {
  const mode = folderMode()
  // Level by level when Node's recursive mkdir says ENOENT, which it also says on a read-only
  // disk: the real cause (EROFS, EACCES) is then reported.
  await mkdir(dir, { recursive: true, mode }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err
    const levels = resolve(dir)
      .split(sep)
      .map((_, i, parts) => parts.slice(0, i + 1).join(sep) || sep)
    for (const level of levels)
      await mkdir(level, { mode }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e
      })
  })
  const s = await lstat(dir)
  if (!s.isDirectory()) throw new Error(`refused: ${dir} is not a folder (a symbolic link?)`)
  if (s.mode & 0o002 && !options.force) {
    throw new Error(
      `refused: ${dir} is writable by other users, who could replace what is written there: ` +
        'use a folder of your own, or pass --force if you accept that',
    )
  }
  // A folder another user made (say in /tmp, before us) is theirs to empty or swap.
  const me = process.getuid?.() ?? s.uid
  if (s.uid !== me && s.uid !== 0 && !options.force) {
    throw new Error(
      `refused: ${dir} belongs to another user (uid ${s.uid}), who could replace what is written there: ` +
        'use a folder of your own, or pass --force if you accept that',
    )
  }
}

/** Creates `path` for writing: a new file only (O_EXCL), never through a symlink, with the file mode. */
export async function createExclusive(path: string): Promise<FileHandle> {
  const mode = fileMode()
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
  await fh.chmod(mode) // whatever the umask took away
  return fh
}

/** Writes `text` to `path` through a fresh temporary file beside it, fsynced, then renamed into place. */
export async function writeFileAtomically(path: string, text: string | Buffer): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await createExclusive(tmp)
  try {
    await fh.writeFile(text)
    await fh.sync()
    await fh.close()
    await rename(tmp, path)
  } catch (err) {
    await fh.close().catch(() => {})
    await rm(tmp, { force: true })
    throw err
  }
}
