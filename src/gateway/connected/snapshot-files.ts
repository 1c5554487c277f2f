import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** A snapshot as the control plane sends it (src/control-plane/distribution/snapshot.ts). */
export interface ReceivedSnapshot {
  version: number;
  hash: string;
  resources: unknown[];
}

export interface SnapshotFileInfo {
  version: number;
  hash: string;
  path: string;
}

/**
 * The files of connected mode, all directly in the data directory so that relative paths in the
 * resources (TLS certificates, key directories) resolve against the data directory:
 * - `snapshot.yaml`: the last good snapshot, the one served; a gateway starts from it;
 * - `snapshot.incoming.yaml`: a received snapshot while it is being compiled.
 * The first line records the version and hash, so that both are replaced in the same rename.
 */
export function lastGoodPath(dataDir: string): string {
  return join(dataDir, 'snapshot.yaml');
}

export function incomingPath(dataDir: string): string {
  return join(dataDir, 'snapshot.incoming.yaml');
}

const headerPattern = /^# gatehouse snapshot version=(\d+) hash=([0-9a-f]+)\n/;

/** Writes the snapshot as multi-document YAML to the incoming file, flushed to disk. */
export function writeIncoming(dataDir: string, snapshot: ReceivedSnapshot): string {
  const header = `# gatehouse snapshot version=${snapshot.version} hash=${snapshot.hash}\n`;
  const body = snapshot.resources.map((r) => `---\n${stringify(r, { lineWidth: 0 })}`).join('');
  const path = incomingPath(dataDir);
  writeDurably(path, header + body);
  return path;
}

/** Makes the incoming file the last good one: one rename, then the directory flushed, so a crash leaves one or the other. */
export function promoteIncoming(dataDir: string): void {
  renameSync(incomingPath(dataDir), lastGoodPath(dataDir));
  syncDir(dataDir);
}

export function discardIncoming(dataDir: string): void {
  rmSync(incomingPath(dataDir), { force: true });
}

/** The last good snapshot on disk, or null (none yet, or unreadable: then it is as if there were none). */
export function readLastGood(dataDir: string): SnapshotFileInfo | null {
  const path = lastGoodPath(dataDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const match = headerPattern.exec(text);
  if (!match) return null;
  return { version: Number(match[1]), hash: match[2]!, path };
}

function writeDurably(path: string, text: string): void {
  const fd = openSync(path, 'w', 0o600);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}
