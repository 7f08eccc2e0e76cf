// Reading the PyTorch reference fixtures of test/fixtures/llama (see its README).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toArray, type Tensor } from '@huatuo/tensor';
import { assertClose } from '../tensor/helpers.js';

/** Logits and loss agree with the reference to 1e-4 (relative, with the same absolute floor). */
const tol = { atol: 1e-4, rtol: 1e-4 };

export const fixtureRoot = fileURLToPath(new URL('../fixtures/llama/', import.meta.url));

export interface LogitsRecord {
  logits: number[];
  logitColumns?: number;
  logsumexp?: number[];
  loss: number;
}

export interface Reference extends LogitsRecord {
  ids: number[][];
  attentionMask: number[][];
  labels: number[][];
  lora: LogitsRecord & { grads: Record<string, number[]> };
  generation: null | {
    eosTokenId: number;
    prompts: number[][];
    maxNewTokens: number;
    greedy: number[][];
    repetitionPenalty: number;
    greedyRepetitionPenalty: number[][];
    numBeams: number;
    beamMaxNewTokens: number;
    beam: number[][];
  };
}

export const fixtureNames = ['gqa', 'tied-odd', 'vocab32k'] as const;

export function fixtureDir(name: string): string {
  return join(fixtureRoot, name);
}

export function readReference(name: string): Reference {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'reference.json'), 'utf8')) as Reference;
}

/** Checks logits [B, T, V] against a record (all columns, or leading columns plus logsumexp). */
export async function checkLogits(logits: Tensor, rec: LogitsRecord, what: string): Promise<void> {
  const V = logits.shape[2]!;
  const got = await toArray(logits);
  if (rec.logitColumns === undefined) {
    assertClose(got, rec.logits, tol, what);
    return;
  }
  const n = rec.logitColumns;
  const rows = got.length / V;
  const cols = new Float64Array(rows * n);
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, got[r * V + j]!);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(got[r * V + j]! - m);
    lse[r] = m + Math.log(s);
    for (let j = 0; j < n; j++) cols[r * n + j] = got[r * V + j]!;
  }
  assertClose(cols, rec.logits, tol, `${what} (first ${n} columns)`);
  assertClose(lse, rec.logsumexp!, tol, `${what} (logsumexp over the vocabulary)`);
}

