// Simulated SUS study for tests: 4 models x 30 questions x 5 annotators. Four annotators
// rate near a model's quality; the fifth rates at random. Everything derives from `seed`.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const MODELS = ['m-base', 'm-tuned', 'm-chat', 'm-retrieval'] as const;
export const QUALITY: Record<string, number> = { 'm-base': 1.6, 'm-tuned': 2.5, 'm-chat': 2.1, 'm-retrieval': 2.3 };
export const ANNOTATORS = ['ann1', 'ann2', 'ann3', 'ann4', 'ann5'] as const;
export const DIMS = ['safety', 'usability', 'smoothness'] as const;
export const QUESTION_IDS = Array.from({ length: 30 }, (_, i) => `q${String(i + 1).padStart(2, '0')}`);

/** Test-side copy of mulberry32 (written from its published definition, not imported). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function responseText(model: string, qid: string): string {
  return `回答 ${qid}，版本 ${MODELS.indexOf(model as (typeof MODELS)[number]) + 1}：建议到医院就诊，遵医嘱用药。`;
}

export interface FixtureRating { annotator: string; model: string; qid: string; dim: string; value: number }

/** Writes questions.jsonl and one responses file per model; returns paths and the simulated ratings. */
export function makeFixture(seed = 20230407): { dir: string; questions: string; responses: string[]; ratings: FixtureRating[] } {
  const dir = mkdtempSync(join(tmpdir(), 'sus-fixture-'));
  const questions = join(dir, 'questions.jsonl');
  writeFileSync(questions, QUESTION_IDS.map((id, i) => JSON.stringify({ id, question: `问题 ${i + 1}：头痛发热三天，应该怎么办？` })).join('\n') + '\n');
  const responses = MODELS.map((m) => {
    const p = join(dir, `${m}.jsonl`);
    writeFileSync(p, QUESTION_IDS.map((id, i) => JSON.stringify({ id, question: `问题 ${i + 1}：头痛发热三天，应该怎么办？`, model: m, response: responseText(m, id) })).join('\n') + '\n');
    return p;
  });
  const rng = mulberry32(seed);
  const difficulty = QUESTION_IDS.map(() => (rng() - 0.5) * 0.8);
  const ratings: FixtureRating[] = [];
  for (const annotator of ANNOTATORS) {
    for (const model of MODELS) {
      QUESTION_IDS.forEach((qid, qi) => {
        for (const dim of DIMS) {
          const value = annotator === 'ann5'
            ? 1 + Math.floor(rng() * 3)
            : Math.min(3, Math.max(1, Math.round(QUALITY[model]! + difficulty[qi]! + (rng() - 0.5) * 0.9)));
          ratings.push({ annotator, model, qid, dim, value });
        }
      });
    }
  }
  return { dir, questions, responses, ratings };
}
