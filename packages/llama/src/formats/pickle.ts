// A restricted pickle interpreter: the data opcodes of protocols 2-5 and nothing that runs code.
// Globals and persistent ids are resolved only through the caller's allowlist. Browser-safe.

import { TorchCheckpointError } from '../errors.js';

/** A Python tuple (kept apart from lists, which are plain arrays). */
export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

/** A Python dict or OrderedDict, in insertion order. */
export class PyDict {
  readonly map = new Map<PyKey, PyValue>();
}

/** A global the allowlist admitted: a callable applied by REDUCE, or a plain marker (a storage type). */
export interface PyGlobal {
  readonly kind: 'global';
  /** `module.name`, for messages. */
  readonly qualifiedName: string;
  /** Applies the callable to its argument tuple; absent for globals that are never called. */
  readonly call?: (args: readonly PyValue[]) => PyValue;
}

/** An object the caller's callables build (a tensor reference, a storage). */
export interface PyOpaque {
  readonly kind: 'opaque';
  readonly value: unknown;
}

/** A value usable as a dict key (bigint for integers beyond 2^53). */
export type PyKey = string | number | bigint | boolean | null;
/** Any value the interpreter builds. */
export type PyValue = PyKey | Uint8Array | PyValue[] | PyTuple | PyDict | PyGlobal | PyOpaque;

/** How the interpreter resolves what is outside plain data. */
export interface PickleHooks {
  /** Resolves GLOBAL / STACK_GLOBAL; throws for anything not allowed. */
  findGlobal(module: string, name: string): PyGlobal;
  /** Resolves BINPERSID's id. */
  persistentLoad(pid: PyValue): PyValue;
}

/**
 * Most values a pickle may push or memoize (2^21): a state dict's pickle makes about 30 per tensor, so this admits
 * some 60000 tensors in one file and keeps the interpreter's memory near half a gigabyte (a dict is some 250 bytes).
 */
const maxPickleValues = 2 ** 21;

const mark = Symbol('mark');
type Slot = PyValue | typeof mark;
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A short description of a value, for messages. */
export function describePy(v: PyValue): string {
  if (v === null) return 'None';
  if (v instanceof PyTuple) return `a ${v.items.length}-tuple`;
  if (v instanceof PyDict) return 'a dict';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return v.kind === 'global' ? v.qualifiedName : 'an object';
  return `${typeof v === 'string' ? 'the string' : typeof v} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`;
}

/**
 * Interprets `bytes` as a pickle and returns its value. Only data opcodes are interpreted;
 * GLOBAL and BINPERSID go through `hooks`; REDUCE calls only what `hooks` returned with a
 * `call`; BUILD only sets state on dicts (ignored, as attributes such as `_metadata` carry no
 * tensors). Any other opcode is refused with a TorchCheckpointError naming `file` and the byte.
 */
export function unpickle(bytes: Uint8Array, file: string, hooks: PickleHooks): PyValue {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: Slot[] = [];
  const memo = new Map<number, PyValue>();
  let p = 0;
  const fail = (at: number, what: string) => new TorchCheckpointError(file, undefined, `data.pkl byte ${at}: ${what}`);
  const need = (n: number) => {
    if (p + n > bytes.byteLength) throw fail(p, `needs ${n} more bytes, the pickle ends; the file is truncated or corrupt`);
    const at = p;
    p += n;
    return at;
  };
  let made = 0;
  let opAt = 0;
  // Every value pushed or memoized counts, so that the stack, the containers and the memo stay small whatever
  // the pickle's length (a JS array past 2^27 items is a fatal error, not an exception).
  const count = () => {
    if (++made > maxPickleValues) {
      throw fail(opAt, `the pickle makes more than ${maxPickleValues} values, where a state dict's makes about 30 per tensor; it is not a state dict: refused`);
    }
  };
  const push = (v: Slot) => {
    count();
    stack.push(v);
  };
  const remember = (k: number, v: PyValue) => {
    count();
    memo.set(k, v);
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined || v === mark) throw fail(p, 'the pickle stack is empty where a value is needed; the pickle is corrupt');
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === mark) throw fail(p, 'the pickle stack is empty where a value is needed; the pickle is corrupt');
    return v;
  };
  const popMark = (): PyValue[] => {
    const i = stack.lastIndexOf(mark);
    if (i < 0) throw fail(p, 'no MARK on the stack; the pickle is corrupt');
    const items = stack.splice(i) as PyValue[];
    items.shift();
    return items;
  };
  const text = (n: number, decoder: TextDecoder) => {
    const at = need(n);
    try {
      return decoder.decode(bytes.subarray(at, at + n));
    } catch {
      throw fail(at, 'a string is not valid UTF-8; the pickle is corrupt');
    }
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw fail(p, 'a GLOBAL name has no line end; the pickle is corrupt');
    const s = latin1.decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const size64 = () => {
    const v = dv.getBigUint64(need(8), true);
    if (v > BigInt(bytes.byteLength)) throw fail(p - 8, `a length of ${v} bytes runs past the pickle`);
    return Number(v);
  };
  const setItem = (d: PyValue, k: PyValue, v: PyValue, at: number) => {
    if (!(d instanceof PyDict)) throw fail(at, `SETITEM on ${describePy(d)}, not a dict`);
    if (typeof k === 'object' && k !== null) throw fail(at, `a dict key is ${describePy(k)}; only strings, numbers, booleans and None are supported`);
    d.map.set(k, v);
  };
  const signedLong = (at: number, n: number): number | bigint => {
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]!);
    if (n > 0 && bytes[at + n - 1]! >= 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const global = (module: string, name: string) => hooks.findGlobal(module, name);

  for (;;) {
    const at = need(1);
    opAt = at;
    const op = bytes[at]!;
    switch (op) {
      case 0x80: { // PROTO
        const v = bytes[need(1)]!;
        if (v > 5) throw fail(at, `pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: need(8); break; // FRAME: a read-ahead hint
      case 0x2e: { // STOP
        const v = pop();
        if (stack.length !== 0) throw fail(at, 'values are left on the stack at STOP; the pickle is corrupt');
        return v;
      }
      case 0x28: push(mark); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: push(dv.getInt32(need(4), true)); break; // BININT
      case 0x4b: push(bytes[need(1)]!); break; // BININT1
      case 0x4d: push(dv.getUint16(need(2), true)); break; // BININT2
      case 0x8a: { const n = bytes[need(1)]!; push(signedLong(need(n), n)); break; } // LONG1
      case 0x8b: { // LONG4
        const n = dv.getInt32(need(4), true);
        if (n < 0 || n > 64) throw fail(at, `a ${n}-byte integer is beyond any size or offset`);
        push(signedLong(need(n), n));
        break;
      }
      case 0x47: push(dv.getFloat64(need(8), false)); break; // BINFLOAT
      case 0x58: push(text(dv.getUint32(need(4), true), utf8)); break; // BINUNICODE
      case 0x8c: push(text(bytes[need(1)]!, utf8)); break; // SHORT_BINUNICODE
      case 0x8d: push(text(size64(), utf8)); break; // BINUNICODE8
      case 0x54: push(text(dv.getUint32(need(4), true), latin1)); break; // BINSTRING
      case 0x55: push(text(bytes[need(1)]!, latin1)); break; // SHORT_BINSTRING
      case 0x42: { const n = dv.getUint32(need(4), true); const s = need(n); push(bytes.slice(s, s + n)); break; } // BINBYTES
      case 0x43: { const n = bytes[need(1)]!; const s = need(n); push(bytes.slice(s, s + n)); break; } // SHORT_BINBYTES
      case 0x8e: { const n = size64(); const s = need(n); push(bytes.slice(s, s + n)); break; } // BINBYTES8
      case 0x29: push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x74: push(new PyTuple(popMark())); break; // TUPLE
      case 0x85: push(new PyTuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); push(new PyTuple([pop(), b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); push(new PyTuple([pop(), b, c])); break; } // TUPLE3
      case 0x5d: push([]); break; // EMPTY_LIST
      case 0x6c: push(popMark()); break; // LIST
      case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) throw fail(at, `APPEND to ${describePy(l)}`); l.push(v); break; } // APPEND
      case 0x65: { const vs = popMark(); const l = top(); if (!Array.isArray(l)) throw fail(at, `APPENDS to ${describePy(l)}`); for (const v of vs) l.push(v); break; } // APPENDS (a loop: spreading a long list overflows the call stack)
      case 0x7d: push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { // DICT
        const kv = popMark();
        const d = new PyDict();
        for (let i = 0; i + 1 < kv.length; i += 2) setItem(d, kv[i]!, kv[i + 1]!, at);
        push(d);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItem(top(), k, v, at); break; } // SETITEM
      case 0x75: { // SETITEMS
        const kv = popMark();
        if (kv.length % 2 !== 0) throw fail(at, 'SETITEMS has an odd number of keys and values');
        const d = top();
        for (let i = 0; i < kv.length; i += 2) setItem(d, kv[i]!, kv[i + 1]!, at);
        break;
      }
      case 0x71: remember(bytes[need(1)]!, top()); break; // BINPUT
      case 0x72: remember(dv.getUint32(need(4), true), top()); break; // LONG_BINPUT
      case 0x94: remember(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const k = op === 0x68 ? bytes[need(1)]! : dv.getUint32(need(4), true);
        const v = memo.get(k);
        if (v === undefined) throw fail(at, `memo entry ${k} was never stored; the pickle is corrupt`);
        push(v);
        break;
      }
      case 0x63: { const module = line(); push(global(module, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail(at, 'STACK_GLOBAL needs two strings');
        push(global(module, name));
        break;
      }
      case 0x51: push(hooks.persistentLoad(pop())); break; // BINPERSID
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (typeof fn !== 'object' || fn === null || !('kind' in fn) || fn.kind !== 'global' || fn.call === undefined) {
          throw fail(at, `REDUCE calls ${describePy(fn)}, which is not an allowed callable`);
        }
        if (!(args instanceof PyTuple)) throw fail(at, `${fn.qualifiedName} is called with ${describePy(args)}, not an argument tuple`);
        push(fn.call(args.items));
        break;
      }
      case 0x62: { // BUILD
        pop();
        const target = top();
        if (!(target instanceof PyDict)) throw fail(at, `BUILD sets the state of ${describePy(target)}; only a dict's attributes (such as _metadata) are accepted`);
        break;
      }
      default:
        throw fail(at, `opcode 0x${op.toString(16).padStart(2, '0')} is not one a state dict uses; refused (torch.load(weights_only=True) refuses such pickles too)`);
    }
  }
}
