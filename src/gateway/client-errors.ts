import type { Socket } from 'node:net';
import { type ProblemCode, rawProblemResponse } from '../errors.ts';

/**
 * Errors Node's HTTP parser raises before a request object exists. They are answered with the
 * same problem+json bodies as everything else, then the connection is closed.
 */
export function handleClientError(err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  let code: ProblemCode;
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      code = 'header_too_large';
      break;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      code = 'request_timeout';
      break;
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CONTENT_LENGTH':
      code = 'bad_framing';
      break;
    default:
      code = 'bad_request';
  }
  socket.end(rawProblemResponse(code));
}
