// Reading an OpenAI request's fields: their JSON types and ranges, null meaning absent, and
// errors that name the field, what it should be and what came.

import { HttpError } from './serve-errors.js';

/** A parsed JSON request body. */
export type Body = Record<string, unknown>;

/** How an error names a value it got: its type and, for a scalar, its JSON. */
export function typeName(v: unknown): string {
  if (v === undefined) return 'nothing (the field is missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

/** The 400 for `param` holding `got` where `expected` was wanted. */
export function bad(param: string, expected: string, got: unknown): HttpError {
  return new HttpError(400, `${param}: expected ${expected}, got ${typeName(got)}`);
}

/** `body[key]` checked by `check`, or undefined when absent or null. */
export function optional<T>(body: Body, key: string, check: (v: unknown) => v is T, expected: string): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw bad(key, expected, v);
  return v;
}

/** Type checks of JSON values: a finite number, a safe integer, a boolean, a plain object. */
export const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
export const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
export const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
/** A 64-bit signed integer, as OpenAI's `seed`; JSON numbers past 2^53 arrive rounded, but whole. */
export const isInt64 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 63) && v <= 2 ** 63;
export const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An optional number (or integer) field, checked to lie in [lo, hi]. */
export function inRange(body: Body, key: string, lo: number, hi: number, integer: boolean): number | undefined {
  const v = optional(body, key, integer ? isInt : isNumber, integer ? 'an integer' : 'a number');
  if (v !== undefined && (v < lo || v > hi)) throw new HttpError(400, `${key}: expected ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${v}`);
  return v;
}

/** Refuses OpenAI features this server does not implement, when a request turns them on. */
export function refuseUnsupported(body: Body, keys: readonly string[]): void {
  for (const key of keys) {
    const v = body[key];
    const off = v === undefined || v === null || v === false || v === 0 || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);
    if (!off) throw new HttpError(400, `${key}: not supported by this server (got ${typeName(v)}); leave it out`);
  }
}

/** The `stop` field: up to 4 non-empty strings (one string counts as a list of one). */
export function parseStop(body: Body): string[] {
  const v = body['stop'];
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || list.some((s) => typeof s !== 'string' || s === '')) {
    throw bad('stop', 'a non-empty string or an array of up to 4 non-empty strings', v);
  }
  return list as string[];
}
