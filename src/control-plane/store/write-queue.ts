/**
 * Runs tasks one after another (a promise chain): a store's writes from one process wait here,
 * not in a database lock or a connection pool queue, so a burst of writes holds one connection.
 */
export function createWriteQueue(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task, task);
    tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };
}
