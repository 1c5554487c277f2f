/** Records are stored as JSON text: a value JSON cannot carry is refused before anything is written. */
export function recordJson(collection: string, id: string, value: unknown): string {
  checkRecordId(collection, id);
  const text = value === undefined ? undefined : JSON.stringify(value);
  if (text === undefined)
    throw new TypeError(`record ${collection}/${id}: the value must be JSON (got ${typeof value})`);
  return text;
}

export function checkRecordId(collection: string, id: string): void {
  if (typeof collection !== 'string' || collection === '' || typeof id !== 'string' || id === '') {
    throw new TypeError('record collection and id must be non-empty strings');
  }
}

/** recordUpdate's callback must answer synchronously: it runs inside the write transaction. */
export function checkUpdateAnswer(collection: string, id: string, answer: unknown): void {
  if (
    answer !== null &&
    typeof answer === 'object' &&
    typeof (answer as { then?: unknown }).then === 'function'
  ) {
    throw new TypeError(`recordUpdate ${collection}/${id}: update must return a value, not a promise`);
  }
}
