// Seeded sampling of knowledge instances: (entity, attribute subset) pairs,
// balanced over classes and attributes, never repeating a pair.

import type { EntityClass, KgEntity } from './graph.js';
import { ENTITY_CLASSES, classOf } from './graph.js';

/** A sampled knowledge instance. */
export interface KnowledgeSample {
  entity: KgEntity;
  /** Chosen attribute names, in the entity's attribute order. */
  attributes: string[];
  /** Identity of the (entity, attribute set) pair; see {@link sampleKey}. */
  key: string;
}

/** Sampler settings. */
export interface SamplerOptions {
  /** Seed of the pseudo-random generator; the same seed and graph give the same sequence. */
  seed: number;
  /** Fewest attributes per sample (>= 1). */
  minAttributes: number;
  /** Most attributes per sample (>= minAttributes); capped by each entity's attribute count. */
  maxAttributes: number;
}

/**
 * Identity of an (entity, attribute set) pair, independent of attribute order.
 * @example sampleKey('disease', '高血压', ['药物治疗', '典型症状']) // 'disease|高血压|典型症状+药物治疗'
 */
export function sampleKey(kind: EntityClass, name: string, attributes: readonly string[]): string {
  return `${kind}|${name}|${[...attributes].sort().join('+')}`;
}

/**
 * The sample key of stored CMeKG knowledge (an output record's `knowledge`), or
 * undefined when the knowledge is not CMeKG-shaped with a known class.
 */
export function knowledgeKey(knowledge: unknown): string | undefined {
  if (knowledge === null || typeof knowledge !== 'object') return undefined;
  const k = knowledge as Record<string, unknown>;
  const rawClass = k['class'];
  const name = k['中心词'];
  if (typeof rawClass !== 'string' || typeof name !== 'string') return undefined;
  const kind = classOf(rawClass);
  if (kind === undefined) return undefined;
  const attrs = Object.keys(k).filter((a) => a !== 'class' && a !== '中心词');
  return sampleKey(kind, name, attrs);
}

/** mulberry32: a small, fast 32-bit generator; returns floats in [0, 1). */
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

function shuffle<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

function combinations(n: number, k: number): number[][] {
  const out: number[][] = [];
  const pick: number[] = [];
  const rec = (start: number): void => {
    if (pick.length === k) {
      out.push([...pick]);
      return;
    }
    for (let i = start; i <= n - (k - pick.length); i++) {
      pick.push(i);
      rec(i + 1);
      pick.pop();
    }
  };
  rec(0);
  return out;
}

function choose(n: number, k: number): number {
  let c = 1;
  for (let i = 0; i < k; i++) c = (c * (n - i)) / (i + 1);
  return Math.round(c);
}

interface ClassState {
  kind: EntityClass;
  /** Entities with unused pairs left. */
  live: KgEntity[];
  /** Current pass order over live entities. */
  queue: KgEntity[];
  /** Times each attribute name was sampled in this class. */
  attrUse: Map<string, number>;
}

/**
 * Draws knowledge samples. Classes take turns (disease, drug, symptom); within a
 * class every entity is visited once per shuffled pass; within an entity the
 * attribute set is the unused one whose attributes were sampled least so far in
 * that class (random tie-break). A pair is never returned twice.
 * @example
 * const s = new KnowledgeSampler(graph.entities, { seed: 1, minAttributes: 1, maxAttributes: 2 });
 * const first = s.next(); // { entity, attributes: ['药物治疗'], key: 'disease|高血压|药物治疗' }
 */
export class KnowledgeSampler {
  readonly #rand: () => number;
  readonly #min: number;
  readonly #max: number;
  readonly #classes: ClassState[];
  readonly #used = new Set<string>();
  readonly #usedPerEntity = new Map<KgEntity, number>();
  #turn = 0;

  constructor(entities: readonly KgEntity[], options: SamplerOptions) {
    if (!Number.isInteger(options.minAttributes) || options.minAttributes < 1 || !Number.isInteger(options.maxAttributes) || options.maxAttributes < options.minAttributes) {
      throw new RangeError(`KnowledgeSampler: attributes per sample must be integers with 1 <= min <= max, got min ${options.minAttributes}, max ${options.maxAttributes}`);
    }
    this.#rand = mulberry32(options.seed);
    this.#min = options.minAttributes;
    this.#max = options.maxAttributes;
    this.#classes = ENTITY_CLASSES.map((kind) => ({
      kind,
      live: entities.filter((e) => e.kind === kind && Object.keys(e.attributes).length >= this.#min),
      queue: [],
      attrUse: new Map<string, number>(),
    })).filter((c) => c.live.length > 0);
  }

  /** Number of distinct pairs the graph can yield under these settings. */
  capacity(): number {
    let total = 0;
    for (const c of this.#classes) for (const e of c.live) total += this.#pairsOf(e);
    return total;
  }

  #pairsOf(entity: KgEntity): number {
    const n = Object.keys(entity.attributes).length;
    let total = 0;
    for (let k = this.#min; k <= Math.min(this.#max, n); k++) total += choose(n, k);
    return total;
  }

  /** The next unused sample, or undefined when every pair has been drawn. */
  next(): KnowledgeSample | undefined {
    while (this.#classes.some((c) => c.live.length > 0)) {
      const state = this.#classes[this.#turn % this.#classes.length] as ClassState;
      this.#turn++;
      if (state.live.length === 0) continue;
      const sample = this.#drawFrom(state);
      if (sample !== undefined) return sample;
    }
    return undefined;
  }

  #drawFrom(state: ClassState): KnowledgeSample | undefined {
    while (state.live.length > 0) {
      if (state.queue.length === 0) state.queue = shuffle([...state.live], this.#rand);
      const entity = state.queue.shift() as KgEntity;
      if (!state.live.includes(entity)) continue;
      const attrs = this.#pickAttributes(state, entity);
      const used = (this.#usedPerEntity.get(entity) ?? 0) + (attrs === undefined ? 0 : 1);
      this.#usedPerEntity.set(entity, used);
      if (attrs === undefined || used >= this.#pairsOf(entity)) {
        state.live = state.live.filter((e) => e !== entity);
      }
      if (attrs === undefined) continue;
      for (const a of attrs) state.attrUse.set(a, (state.attrUse.get(a) ?? 0) + 1);
      const key = sampleKey(entity.kind, entity.name, attrs);
      this.#used.add(key);
      return { entity, attributes: attrs, key };
    }
    return undefined;
  }

  #pickAttributes(state: ClassState, entity: KgEntity): string[] | undefined {
    const names = Object.keys(entity.attributes);
    const hi = Math.min(this.#max, names.length);
    const sizes: number[] = [];
    for (let k = this.#min; k <= hi; k++) sizes.push(k);
    shuffle(sizes, this.#rand);
    for (const k of sizes) {
      let best: number[] | undefined;
      let bestScore = Infinity;
      for (const combo of combinations(names.length, k)) {
        const attrs = combo.map((i) => names[i] as string);
        if (this.#used.has(sampleKey(entity.kind, entity.name, attrs))) continue;
        let score = 0;
        for (const a of attrs) score += state.attrUse.get(a) ?? 0;
        score += this.#rand() * 0.5;
        if (score < bestScore) {
          bestScore = score;
          best = combo;
        }
      }
      if (best !== undefined) return best.map((i) => names[i] as string);
    }
    return undefined;
  }
}
