import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { hashApiKey } from '../identity/consumers.ts';

/** Most bytes read from stdin: a key is a line, not a file. */
const maxInputBytes = 4096;

async function readKey(stdin: NodeJS.ReadableStream): Promise<string | Error> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > maxInputBytes) return new Error(`input longer than ${maxInputBytes} bytes`);
    chunks.push(buffer);
  }
  // `echo key | gatehouse hash-key` sends a trailing newline that is not part of the key.
  const key = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (key === '') return new Error('no key on stdin');
  if (/[\r\n]/.test(key)) return new Error('one key per run: the input holds several lines');
  return key;
}

/**
 * `gatehouse hash-key`: prints the SHA-256 of a key read from stdin, the form a Consumer stores.
 * `--generate` makes a random key (256 bits, base64url) and prints it once, with its hash.
 * Keys are never written anywhere but stdout.
 */
export async function runHashKey(
  args: string[],
  io: {
    stdin: NodeJS.ReadableStream;
    stdout: NodeJS.WritableStream;
    stderr: NodeJS.WritableStream;
  } = process,
): Promise<number> {
  const { values } = parseArgs({ args, options: { generate: { type: 'boolean', default: false } } });
  if (values.generate) {
    const key = randomBytes(32).toString('base64url');
    io.stdout.write(`key: ${key}\nsha256: ${hashApiKey(key)}\n`);
    io.stderr.write(
      'Give the key to the consumer now: it is shown only this once. Store only the sha256, e.g.\n' +
        '  spec: { apiKeys: [{ sha256: <sha256>, name: <label> }] }\n',
    );
    return 0;
  }
  if ((io.stdin as { isTTY?: boolean }).isTTY) io.stderr.write('Type the key, then Enter and Ctrl-D.\n');
  const key = await readKey(io.stdin);
  if (key instanceof Error) {
    io.stderr.write(`gatehouse hash-key: ${key.message}\nusage: gatehouse hash-key < key.txt | --generate\n`);
    return 2;
  }
  io.stdout.write(`${hashApiKey(key)}\n`);
  return 0;
}
