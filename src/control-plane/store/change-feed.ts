/**
 * onChange listeners. Revisions are reported in increasing order and coalesced: a listener may be
 * told only the newest of several revisions, so it reads `changes({ after: lastSeen })` on each call
 * rather than counting calls. A listener that throws does not stop the others or the write.
 */
export interface ChangeFeed {
  subscribe(listener: (revision: number) => void): () => void;
  /** Report a committed revision (from this process, a notification or a poll). */
  publish(revision: number): void;
  readonly size: number;
  /** The newest revision reported so far. */
  readonly last: number;
}

export function createChangeFeed(initial: number, onListenerError: (err: unknown) => void): ChangeFeed {
  const listeners = new Set<(revision: number) => void>();
  let last = initial;
  return {
    subscribe(listener) {
      // Each subscription is its own entry, even for the same function twice.
      const entry = (revision: number) => listener(revision);
      listeners.add(entry);
      return () => {
        listeners.delete(entry);
      };
    },
    publish(revision) {
      if (revision <= last) return;
      last = revision;
      for (const listener of [...listeners]) {
        try {
          listener(revision);
        } catch (err) {
          onListenerError(err);
        }
      }
    },
    get size() {
      return listeners.size;
    },
    get last() {
      return last;
    },
  };
}
