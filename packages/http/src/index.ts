// Public surface of @huatuo/http: the node:http plumbing shared by `huatuo-train serve` and
// the SUS annotation server.

export { AccessConfigError, AccessGuard, normalizeAllowedHosts, normalizeCorsOrigins } from './access.js';
export type { AccessOptions, Refusal } from './access.js';
export { BodyTooLargeError, readBody, sendJson } from './body.js';
