// Reading the PyTorch reference fixtures of test/fixtures/llama (see its README).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
