export interface ServerSentEvent {
  id: string | null;
  event: string;
  data: string;
}

export class EventTooLargeError extends Error {
  constructor(limit: number) {
    super(`an event of the config stream is larger than ${limit} bytes`);
    this.name = 'EventTooLargeError';
  }
}

/**
 * Incremental Server-Sent Events parser (the WHATWG event-stream format: `field: value` lines,
 * comments starting with `:`, an empty line ends an event). Bounded: an event, or a line without
 * its end, larger than `maxEventBytes` throws EventTooLargeError instead of growing without limit.
 */
export class EventStreamParser {
  readonly #maxEventBytes: number;
  readonly #decoder = new TextDecoder('utf-8');
  #buffer = '';
  #data: string[] = [];
  #dataChars = 0;
  #event = '';
  #id: string | null = null;
  #skipLeadingLf = false;
  /** How much of the buffer is known to hold no line end (a long line arriving in many chunks is scanned once). */
  #scanned = 0;

  constructor(maxEventBytes: number) {
    this.#maxEventBytes = maxEventBytes;
  }

  /** Feeds bytes; returns the events they completed. */
  push(chunk: Uint8Array): ServerSentEvent[] {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    const events: ServerSentEvent[] = [];
    let start = 0;
    for (let i = this.#scanned; i < this.#buffer.length; i++) {
      const c = this.#buffer.charCodeAt(i);
      if (c === 10 && this.#skipLeadingLf && i === start) {
        // The \n of a \r\n split across chunks.
        this.#skipLeadingLf = false;
        start = i + 1;
        continue;
      }
      this.#skipLeadingLf = false;
      if (c !== 10 && c !== 13) continue;
      this.#line(this.#buffer.slice(start, i), events);
      if (c === 13) {
        if (i + 1 < this.#buffer.length) {
          if (this.#buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.#skipLeadingLf = true;
        }
      }
      start = i + 1;
    }
    this.#buffer = this.#buffer.slice(start);
    this.#scanned = this.#buffer.length;
    // Counted in UTF-16 code units, not bytes: memory held stays within a small multiple of the bound.
    if (this.#buffer.length + this.#dataChars > this.#maxEventBytes)
      throw new EventTooLargeError(this.#maxEventBytes);
    return events;
  }

  #line(line: string, events: ServerSentEvent[]): void {
    if (line === '') {
      if (this.#data.length > 0)
        events.push({ id: this.#id, event: this.#event || 'message', data: this.#data.join('\n') });
      this.#data = [];
      this.#dataChars = 0;
      this.#event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.#data.push(value);
      this.#dataChars += value.length + 1;
      if (this.#dataChars > this.#maxEventBytes) throw new EventTooLargeError(this.#maxEventBytes);
    } else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
  }
}
