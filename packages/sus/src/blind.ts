// Blinded studies: every (model, question) response gets an opaque code, each annotator
// sees the items in their own seeded order, and the key (code -> model) lives in a
// separate file. Responses that name a model are flagged before the study starts.

import { createHash, createHmac, randomBytes } from 'node:crypto';
import { basename, extname, join } from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { StudyFormatError, StudyError } from './errors.js';
import { parseJsonRecords, readText, writeFileAtomic } from './files.js';
import { createRng, hashString } from './rng.js';

/** The three SUS dimensions, in the paper's order. */
export const DIMENSIONS = ['safety', 'usability', 'smoothness'] as const;
/** One SUS dimension. */
export type Dimension = (typeof DIMENSIONS)[number];

/** Words that give a model away; a response containing one (case-insensitive) is flagged. */
export const DEFAULT_LEAK_WORDS: readonly string[] = [
  'LLaMA', 'Alpaca', 'ChatGLM', 'HuaTuo', '华驼', 'BenTsao', 'ChatGPT', 'GPT-3', 'GPT-4', 'OpenAI',
  'Vicuna', 'Baichuan', 'Qwen', '通义千问', '文心一言', '羊驼',
];

/** A question of the study. */
export interface Question {
  id: string;
  question: string;
}

/** One model's answer to one question. */
export interface ResponseRecord {
  id: string;
  question: string;
  model: string;
  response: string;
}

/** What annotators may see of one response: no model name. */
export interface StudyItem {
  code: string;
  questionId: string;
  question: string;
  response: string;
}

/** An annotator and the seed of their item order. */
export interface StudyAnnotator {
  name: string;
  seed: number;
}

/** A response flagged for naming a model. */
export interface LeakFlag {
  code: string;
  words: string[];
  /** True when the item was left out of the study (the default). */
  excluded: boolean;
}

/** The annotator-facing part of a study (study.json). */
export interface Study {
  version: 1;
  seed: number;
  items: StudyItem[];
  annotators: StudyAnnotator[];
  leaks: LeakFlag[];
  leakWords: string[];
}

/** The key (key.json), kept apart from what annotators see. */
export interface StudyKey {
  secret: string;
  codes: Record<string, { model: string; questionId: string }>;
}

/** Files of a study directory. */
export const STUDY_FILES = {
  study: 'study.json',
  key: 'key.json',
  tokens: 'tokens.json',
  ratings: 'ratings.sqlite',
} as const;

/** Permission bits of key.json and tokens.json: read and write for their owner only. */
export const SECRET_MODE = 0o600;

/**
 * Reads a questions file: JSONL or a JSON array of `{id?, question}` or HuaTuo's
 * `{instruction, input}` records. Missing ids become `q1`, `q2`, ... by position.
 */
export function readQuestions(path: string): Question[] {
  const out: Question[] = [];
  const seen = new Map<string, number>();
  parseJsonRecords(readText(path), path).forEach(({ row, value }, i) => {
    const q = questionText(value);
    if (q === undefined) throw new StudyFormatError(path, row, 'expected a "question" (or "instruction") string');
    const id = value['id'] === undefined ? `q${i + 1}` : String(value['id']);
    const prev = seen.get(id);
    if (prev !== undefined) throw new StudyFormatError(path, row, `question id "${id}" already used on row ${prev}; ids must be unique`);
    seen.set(id, row);
    out.push({ id, question: q });
  });
  return out;
}

function questionText(v: Record<string, unknown>): string | undefined {
  if (typeof v['question'] === 'string') return v['question'];
  if (typeof v['instruction'] === 'string') {
    const input = typeof v['input'] === 'string' ? v['input'] : '';
    return input ? `${v['instruction']}\n${input}` : v['instruction'];
  }
  return undefined;
}

/**
 * Reads one responses file: JSONL of `{id, question, model, response}`, or the output of
 * `huatuo-train generate` (`{question, answer}` per line, one model per file) in which case
 * `model` must be given (defaults to the file name without extension) and ids are found by
 * matching the question text against `questions`.
 */
export function readResponses(path: string, opts: { model?: string; questions?: readonly Question[] } = {}): ResponseRecord[] {
  const byText = new Map((opts.questions ?? []).map((q) => [q.question.trim(), q.id]));
  const fallbackModel = opts.model ?? basename(path, extname(path));
  return parseJsonRecords(readText(path), path).map(({ row, value }) => {
    const question = questionText(value);
    const response = typeof value['response'] === 'string' ? value['response'] : value['answer'];
    if (question === undefined) throw new StudyFormatError(path, row, 'expected a "question" string');
    if (typeof response !== 'string') throw new StudyFormatError(path, row, 'expected a "response" (or "answer") string');
    const model = opts.model ?? (typeof value['model'] === 'string' ? value['model'] : fallbackModel);
    let id = value['id'] === undefined ? undefined : String(value['id']);
    if (id === undefined) {
      id = byText.get(question.trim());
      if (id === undefined) {
        throw new StudyFormatError(path, row, `record has no "id" and its question does not match any question of the questions file; give ids or pass --questions`);
      }
    }
    return { id, question, model, response };
  });
}

/** Finds the leak words a response contains (case-insensitive). */
export function findLeaks(response: string, words: readonly string[]): string[] {
  const lower = response.toLowerCase();
  return words.filter((w) => w.length > 0 && lower.includes(w.toLowerCase()));
}

/** Options of {@link createStudy} and {@link extendStudy}. */
export interface CreateStudyOptions {
  /** Questions; when given, every response's id must be one of them. */
  questions?: readonly Question[];
  responses: readonly ResponseRecord[];
  annotators: readonly string[];
  /** Study seed, recorded; annotator seeds derive from it and their name. */
  seed?: number;
  leakWords?: readonly string[];
  /** Keep flagged responses in the study instead of leaving them out. */
  keepLeaks?: boolean;
}

/** Result of creating or extending a study. */
export interface CreateStudyResult {
  study: Study;
  key: StudyKey;
  tokens: Record<string, string>;
  /** Items added by this call. */
  added: number;
  /** Newly flagged responses (code, model, words). */
  flagged: Array<{ code: string; model: string; questionId: string; words: string[] }>;
  /** (model, question) pairs with no response, as `model/questionId`. */
  missing: string[];
}

/** Seed of an annotator's order: FNV-1a of `${studySeed}:${name}`, recorded in study.json. */
export function annotatorSeed(studySeed: number, name: string): number {
  return hashString(`${studySeed}:${name}`);
}

/**
 * An annotator's item order: items sorted by SHA-256(`${seed}:${code}`). Adding items or
 * annotators never changes the relative order of items an annotator already had.
 */
export function orderFor(study: Study, annotator: string): StudyItem[] {
  const a = study.annotators.find((x) => x.name === annotator);
  if (!a) throw new StudyError(`annotator "${annotator}" is not in the study; known: ${study.annotators.map((x) => x.name).join(', ')}`);
  const keyed = study.items.map((item) => ({ item, k: createHash('sha256').update(`${a.seed}:${item.code}`).digest('hex') }));
  keyed.sort((x, y) => (x.k < y.k ? -1 : x.k > y.k ? 1 : 0));
  return keyed.map((x) => x.item);
}

function makeCode(secret: string, model: string, questionId: string): string {
  const h = createHmac('sha256', secret).update(`${model}\u0000${questionId}`).digest();
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  let s = '';
  for (let i = 0; i < 10; i++) s += alphabet[h[i]! % 32];
  return `R${s}`;
}

function newToken(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * Creates a study in `dir` (which must not hold one yet): study.json (what annotators see),
 * key.json (code -> model), tokens.json (annotator -> private token).
 * @example createStudy('out/study', { responses, annotators: ['a1', 'a2'], seed: 7 })
 */
export function createStudy(dir: string, opts: CreateStudyOptions): CreateStudyResult {
  if (existsSync(join(dir, STUDY_FILES.study))) {
    throw new StudyError(`${join(dir, STUDY_FILES.study)} already exists; use extendStudy (CLI: --extend) to add models or annotators`);
  }
  mkdirSync(dir, { recursive: true });
  const seed = opts.seed ?? Math.floor(createRng(Date.now() >>> 0)() * 2 ** 32);
  const study: Study = { version: 1, seed, items: [], annotators: [], leaks: [], leakWords: [...(opts.leakWords ?? DEFAULT_LEAK_WORDS)] };
  const key: StudyKey = { secret: randomBytes(16).toString('hex'), codes: {} };
  return addToStudy(dir, study, key, {}, opts);
}

/** Adds responses (new models or questions) and annotators to an existing study without changing existing codes, seeds, tokens or orders. */
export function extendStudy(dir: string, opts: Omit<CreateStudyOptions, 'seed'>): CreateStudyResult {
  const { study, key, tokens } = loadStudy(dir);
  if (opts.leakWords) study.leakWords = [...opts.leakWords];
  return addToStudy(dir, study, key, tokens, opts);
}

function addToStudy(
  dir: string,
  study: Study,
  key: StudyKey,
  tokens: Record<string, string>,
  opts: Omit<CreateStudyOptions, 'seed'>,
): CreateStudyResult {
  const qIds = opts.questions ? new Set(opts.questions.map((q) => q.id)) : undefined;
  const existing = new Set(Object.values(key.codes).map((v) => `${v.model}\u0000${v.questionId}`));
  const seenNow = new Set<string>();
  const flagged: CreateStudyResult['flagged'] = [];
  let added = 0;
  for (const r of opts.responses) {
    if (qIds && !qIds.has(r.id)) throw new StudyError(`response of model "${r.model}" has id "${r.id}", which is not in the questions file; fix the id or the questions file`);
    const pair = `${r.model}\u0000${r.id}`;
    if (seenNow.has(pair)) throw new StudyError(`model "${r.model}" answers question "${r.id}" twice; keep one response per model and question`);
    seenNow.add(pair);
    if (existing.has(pair)) throw new StudyError(`model "${r.model}" already has a response to question "${r.id}" in the study; existing items are never replaced`);
    const code = makeCode(key.secret, r.model, r.id);
    key.codes[code] = { model: r.model, questionId: r.id };
    const words = findLeaks(r.response, study.leakWords);
    const excluded = words.length > 0 && !opts.keepLeaks;
    if (words.length > 0) {
      study.leaks.push({ code, words, excluded });
      flagged.push({ code, model: r.model, questionId: r.id, words });
    }
    if (!excluded) {
      study.items.push({ code, questionId: r.id, question: r.question, response: r.response });
      added++;
    }
  }
  for (const name of opts.annotators) {
    if (!/^[\w.:@-]{1,64}$/u.test(name)) throw new StudyError(`annotator name "${name}" must be 1-64 letters, digits or . _ : @ -`);
    if (study.annotators.some((a) => a.name === name)) continue;
    study.annotators.push({ name, seed: annotatorSeed(study.seed, name) });
    tokens[name] = newToken();
  }
  const models = [...new Set(Object.values(key.codes).map((v) => v.model))];
  const questionIds = opts.questions ? opts.questions.map((q) => q.id) : [...new Set(Object.values(key.codes).map((v) => v.questionId))];
  const have = new Set(Object.values(key.codes).map((v) => `${v.model}\u0000${v.questionId}`));
  const missing = models.flatMap((m) => questionIds.filter((q) => !have.has(`${m}\u0000${q}`)).map((q) => `${m}/${q}`));
  saveStudy(dir, study, key, tokens);
  return { study, key, tokens, added, flagged, missing };
}

/** Writes the three study files atomically, key.json and tokens.json readable by their owner only ({@link SECRET_MODE}). */
export function saveStudy(dir: string, study: Study, key: StudyKey, tokens: Record<string, string>): void {
  writeFileAtomic(join(dir, STUDY_FILES.key), JSON.stringify(key, null, 2) + '\n', SECRET_MODE);
  writeFileAtomic(join(dir, STUDY_FILES.tokens), JSON.stringify(tokens, null, 2) + '\n', SECRET_MODE);
  writeFileAtomic(join(dir, STUDY_FILES.study), JSON.stringify(study, null, 2) + '\n');
}

/** Loads a study directory, checking that its three files agree. */
export function loadStudy(dir: string): { study: Study; key: StudyKey; tokens: Record<string, string> } {
  const read = (name: string): unknown => {
    const path = join(dir, name);
    if (!existsSync(path)) throw new StudyError(`${path} not found; create the study first with \`huatuo-train sus create --out ${dir} ...\``);
    try {
      return JSON.parse(readText(path));
    } catch (e) {
      throw new StudyFormatError(path, undefined, `not valid JSON (${(e as Error).message})`);
    }
  };
  const study = read(STUDY_FILES.study) as Study;
  const key = read(STUDY_FILES.key) as StudyKey;
  const tokens = read(STUDY_FILES.tokens) as Record<string, string>;
  if (study.version !== 1 || !Array.isArray(study.items) || !Array.isArray(study.annotators)) {
    throw new StudyFormatError(join(dir, STUDY_FILES.study), undefined, 'expected a version 1 study with "items" and "annotators"');
  }
  for (const item of study.items) {
    if (!key.codes[item.code]) throw new StudyError(`${join(dir, STUDY_FILES.key)} has no entry for code ${item.code}; the key and the study do not belong together`);
  }
  return { study, key, tokens };
}
