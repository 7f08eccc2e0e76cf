// The serve API's refusals as vLLM's ErrorResponse ({ error: { message, type, param, code } }) or, made before a
// route runs, as the bodies vLLM's web stack writes, and the signal that stops a generation whose client has gone.

import type { ServerResponse } from 'node:http';
import { sendJson } from '@huatuo/http';

/** A request refused with vLLM's error object. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * A refusal vLLM makes before any of its handlers runs, answered with the body its web stack writes rather than an
 * ErrorResponse: FastAPI's {"detail": "Not Found"} and {"detail": "Method Not Allowed"} for a route or method it
 * does not serve, and the --api-key middleware's {"error": "Unauthorized"} (api_server.py).
 */
export class PreRouteError extends HttpError {
  constructor(
    status: number,
    readonly body: Readonly<Record<string, string>>,
    headers: Record<string, string> = {},
  ) {
    super(status, Object.values(body).join('; '), headers);
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

/**
 * vLLM's ErrorResponse of `e` (protocol.py 0052bed): its ErrorInfo under "error", the status as code, and param
 * null, as OpenAIServing.create_error_response and the RequestValidationError handler leave it (the message names
 * the field); a {@link PreRouteError}'s own body.
 */
export function errorBody(e: HttpError): unknown {
  if (e instanceof PreRouteError) return e.body;
  return { error: { message: e.message, type: errorType(e.status), param: null, code: e.status } };
}

/** Answers with `e`'s status, headers and error object (unless a reply has begun). */
export function sendError(res: ServerResponse, e: HttpError): void {
  sendJson(res, e.status, errorBody(e), e.headers);
}

/** The 503 of a server that is closing. */
export function shuttingDown(): HttpError {
  return new HttpError(503, 'the server is shutting down; retry against a running server');
}
