// The serve API's refusals as vLLM's ErrorResponse ({ error: { message, type, param, code } }),
// and the signal that stops a generation whose client has gone.

import type { ServerResponse } from 'node:http';
import { sendJson } from '@huatuo/http';

/** A request refused with vLLM's error object. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The request field at fault, where one is. */
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Thrown from the token callback to stop generating for a client that has gone. */
export class Cancelled extends Error {}

/**
 * vLLM's error type for a status: create_error_response's err_type (serving_engine.py), BadRequestError for a
 * refused request (a bad field, a prompt beyond the context), NotFoundError for a model it does not serve, and
 * InternalServerError; for the statuses vLLM does not send, the name the openai client gives them, as vLLM's are.
 */
function errorType(status: number): string {
  if (status === 401) return 'AuthenticationError';
  if (status === 403) return 'PermissionDeniedError';
  if (status === 404) return 'NotFoundError';
  if (status === 429) return 'RateLimitError';
  if (status >= 500) return 'InternalServerError';
  return 'BadRequestError';
}

/** vLLM's ErrorResponse of `e` (protocol.py 0052bed): its ErrorInfo under "error", the status as code. */
export function errorBody(e: HttpError): unknown {
  return { error: { message: e.message, type: errorType(e.status), param: e.param, code: e.status } };
}

/** Answers with `e`'s status, headers and error object (unless a reply has begun). */
export function sendError(res: ServerResponse, e: HttpError): void {
  sendJson(res, e.status, errorBody(e), e.headers);
}

/** The 503 of a server that is closing. */
export function shuttingDown(): HttpError {
  return new HttpError(503, 'the server is shutting down; retry against a running server');
}
