import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON lines on stdout. The access log never carries Authorization or cookies: it is written from
 * chosen fields, never from the header map; the redact list is a second line of defence.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'gatehouse',
      level: options.level ?? process.env.GATEHOUSE_LOG_LEVEL ?? 'info',
      base: undefined,
      redact: [
        'headers.authorization',
        'headers.cookie',
        'headers["proxy-authorization"]',
        'headers["set-cookie"]',
      ],
    },
    pino.destination({ sync: false }),
  );
}
