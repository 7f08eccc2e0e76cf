// The serve API's refusals as OpenAI error objects ({ error: { message, type, param, code } }),
// and the signal that stops a generation whose client has gone.

import type { ServerResponse } from 'node:http';
import { sendJson } from '@huatuo/http';

/** OpenAI's error types. */
export type ErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'server_error' | 'overloaded_error';

/** A request refused with an OpenAI error object. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Thrown from the token callback to stop generating for a client that has gone. */
export class Cancelled extends Error {}

/** The OpenAI error object of `e`. */
export function errorBody(e: HttpError): unknown {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

/** Answers with `e`'s status, headers and error object (unless a reply has begun). */
export function sendError(res: ServerResponse, e: HttpError): void {
  sendJson(res, e.status, errorBody(e), e.headers);
}

/** The 503 of a server that is closing. */
export function shuttingDown(): HttpError {
  return new HttpError(503, 'the server is shutting down; retry against a running server', 'overloaded_error');
}
