// Knowledge-graph records: the CMeKG entity shape (HuaTuo's Table 1) and the
// disease-centred JSONL of QASystemOnMedicalKG, read into one entity model.

import { readFile } from 'node:fs/promises';
import { GraphFormatError } from './errors.js';

/** The three entity classes the generator knows. */
export type EntityClass = 'disease' | 'drug' | 'symptom';

/** Every entity class, in sampling order. */
export const ENTITY_CLASSES: readonly EntityClass[] = ['disease', 'drug', 'symptom'];

/** One knowledge entity: a disease, drug or symptom and its attributes. */
export interface KgEntity {
  /** Normalised class. */
  kind: EntityClass;
  /** The `class` string as written in the source record (e.g. "疾病", "百种常见病"). */
  rawClass: string;
  /** The entity name (CMeKG `中心词`, QASystem `name`). */
  name: string;
  /** Attribute name -> non-empty list of non-empty values, in source order. */
  attributes: Record<string, string[]>;
}

/** A record the loader did not use, and why. */
export interface SkippedRecord {
  /** 1-based line (JSONL) or array index + 1 (JSON array). */
  record: number;
  /** What was wrong and what was expected. */
  reason: string;
}

/** Result of reading a graph file. */
export interface LoadedGraph {
  /** Source file, or a label for text parsed from memory. */
  file: string;
  entities: KgEntity[];
  /** Records that were not loaded. */
  skipped: SkippedRecord[];
  /** Attributes dropped from records that were otherwise loaded. */
  warnings: string[];
}

/** Knowledge in CMeKG shape, as stored in each output record's `knowledge` field. */
export type CmekgRecord = { class: string; 中心词: string } & Record<string, string | string[]>;

const CLASS_ALIASES: Record<string, EntityClass> = {
  disease: 'disease',
  疾病: 'disease',
  百种常见病: 'disease',
  常见病: 'disease',
  drug: 'drug',
  药物: 'drug',
  药品: 'drug',
  西药: 'drug',
  中药: 'drug',
  中成药: 'drug',
  symptom: 'symptom',
  症状: 'symptom',
  体征: 'symptom',
};

/** Class strings the loader accepts, for error messages and documentation. */
export const KNOWN_CLASS_NAMES: readonly string[] = Object.keys(CLASS_ALIASES);

/**
 * Map a record's `class` string to an entity class, or undefined when unknown.
 * @example classOf('百种常见病') // 'disease'
 */
export function classOf(rawClass: string): EntityClass | undefined {
  return CLASS_ALIASES[rawClass.trim()] ?? CLASS_ALIASES[rawClass.trim().toLowerCase()];
}

/** QASystemOnMedicalKG field -> attribute name used in the entity model. */
const QASYSTEM_FIELDS: Record<string, string> = {
  desc: '简介',
  category: '所属类别',
  symptom: '典型症状',
  acompany: '并发症',
  cure_department: '就诊科室',
  cure_way: '治疗方式',
  check: '辅助检查',
  common_drug: '药物治疗',
  recommand_drug: '推荐药物',
  do_eat: '宜吃食物',
  not_eat: '忌吃食物',
  recommand_eat: '推荐食谱',
  cause: '病因',
  prevent: '预防',
  cure_lasttime: '治疗周期',
  cured_prob: '治愈率',
  easy_get: '易感人群',
  get_prob: '患病比例',
  get_way: '传染方式',
  yibao_status: '医保',
  cost_money: '治疗费用',
};

/** QASystem fields that carry no knowledge and are dropped silently. */
const QASYSTEM_IGNORED = new Set(['_id', 'name', 'drug_detail']);

/** Generic category labels of QASystem that say nothing about the disease. */
const QASYSTEM_GENERIC_CATEGORY = new Set(['疾病百科']);

function cleanValues(value: unknown): string[] | undefined {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) return undefined;
  const out: string[] = [];
  for (const v of list) {
    if (typeof v === 'number') out.push(String(v));
    else if (typeof v === 'string') {
      const t = v.trim();
      if (t !== '' && !out.includes(t)) out.push(t);
    } else return undefined;
  }
  return out;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array with non-string items';
  return `a ${typeof value}`;
}

type RecordResult = { entity: KgEntity; warnings: string[] } | { reason: string };

function readCmekg(rec: Record<string, unknown>, label: string): RecordResult {
  const name = rec['中心词'];
  if (typeof name !== 'string' || name.trim() === '') {
    return { reason: `"中心词" must be a non-empty string, got ${describe(name)}` };
  }
  const rawClass = rec['class'];
  if (typeof rawClass !== 'string') {
    return { reason: `"class" must be a string naming a disease, drug or symptom class, got ${describe(rawClass)}` };
  }
  const kind = classOf(rawClass);
  if (kind === undefined) {
    return { reason: `"class" is "${rawClass}"; expected one of ${KNOWN_CLASS_NAMES.join(', ')}` };
  }
  const attributes: Record<string, string[]> = {};
  const warnings: string[] = [];
  for (const [key, value] of Object.entries(rec)) {
    if (key === 'class' || key === '中心词') continue;
    const values = cleanValues(value);
    if (values === undefined) {
      warnings.push(`${label} (${name.trim()}): attribute "${key}" is ${describe(value)}, expected a string or a list of strings; attribute ignored`);
    } else if (values.length > 0) attributes[key.trim()] = values;
  }
  return { entity: { kind, rawClass: rawClass.trim(), name: name.trim(), attributes }, warnings };
}

function readQaSystem(rec: Record<string, unknown>, label: string): RecordResult {
  const name = rec['name'];
  if (typeof name !== 'string' || name.trim() === '') {
    return { reason: `"name" must be a non-empty string, got ${describe(name)}` };
  }
  const attributes: Record<string, string[]> = {};
  const warnings: string[] = [];
  for (const [key, value] of Object.entries(rec)) {
    if (QASYSTEM_IGNORED.has(key)) continue;
    const attr = QASYSTEM_FIELDS[key];
    if (attr === undefined) {
      warnings.push(`${label} (${name.trim()}): unknown QASystemOnMedicalKG field "${key}" ignored`);
      continue;
    }
    let values = cleanValues(value);
    if (values === undefined) {
      warnings.push(`${label} (${name.trim()}): field "${key}" is ${describe(value)}, expected a string or a list of strings; field ignored`);
      continue;
    }
    if (key === 'category') values = values.filter((v) => !QASYSTEM_GENERIC_CATEGORY.has(v));
    if (values.length > 0) attributes[attr] = values;
  }
  return { entity: { kind: 'disease', rawClass: '疾病', name: name.trim(), attributes }, warnings };
}

function readRecord(value: unknown, label: string): RecordResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { reason: `expected a JSON object, got ${Array.isArray(value) ? 'an array' : describe(value)}` };
  }
  const rec = value as Record<string, unknown>;
  if ('中心词' in rec || 'class' in rec) return readCmekg(rec, label);
  if ('name' in rec) return readQaSystem(rec, label);
  return { reason: 'neither a CMeKG record ("class", "中心词") nor a QASystemOnMedicalKG record ("name"); see the @huatuo/kg README for both shapes' };
}

/**
 * Parse graph text: a JSON array of records, or JSONL with one record per line.
 * Records may be in CMeKG shape or QASystemOnMedicalKG shape, mixed freely.
 * Invalid records are skipped and reported, never thrown; an entity repeated
 * (same class and name) keeps its first record.
 * @example parseGraph('{"class":"疾病","中心词":"高血压","药物治疗":["氨氯地平"]}', 'inline').entities[0].name // '高血压'
 */
export function parseGraph(text: string, file: string): LoadedGraph {
  const body = text.replace(/^\uFEFF/, '');
  const records: { value: unknown; record: number; parseError?: string }[] = [];
  const trimmed = body.trimStart();
  if (trimmed.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (e) {
      throw new GraphFormatError(file, `starts with "[" but is not valid JSON (${(e as Error).message}); write a JSON array of records or JSONL with one record per line`);
    }
    (parsed as unknown[]).forEach((value, i) => records.push({ value, record: i + 1 }));
  } else {
    body.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        records.push({ value: JSON.parse(line), record: i + 1 });
      } catch (e) {
        records.push({ value: undefined, record: i + 1, parseError: (e as Error).message });
      }
    });
  }
  const entities: KgEntity[] = [];
  const skipped: SkippedRecord[] = [];
  const warnings: string[] = [];
  const seen = new Map<string, number>();
  const unit = trimmed.startsWith('[') ? 'record' : 'line';
  for (const { value, record, parseError } of records) {
    if (parseError !== undefined) {
      skipped.push({ record, reason: `invalid JSON (${parseError})` });
      continue;
    }
    const result = readRecord(value, `${unit} ${record}`);
    if ('reason' in result) {
      skipped.push({ record, reason: result.reason });
      continue;
    }
    const { entity } = result;
    warnings.push(...result.warnings);
    if (Object.keys(entity.attributes).length === 0) {
      skipped.push({ record, reason: `${entity.name}: no attribute with a value; an entity needs at least one attribute -> values list` });
      continue;
    }
    const key = `${entity.kind}:${entity.name}`;
    const first = seen.get(key);
    if (first !== undefined) {
      skipped.push({ record, reason: `${entity.name}: duplicate of ${unit} ${first} (same class and name); first record kept` });
      continue;
    }
    seen.set(key, record);
    entities.push(entity);
  }
  return { file, entities, skipped, warnings };
}

/**
 * Read a graph file (JSON array or JSONL; CMeKG or QASystemOnMedicalKG records).
 * @example const graph = await loadGraph('my-graph.jsonl'); graph.skipped // records not used, with reasons
 */
export async function loadGraph(file: string): Promise<LoadedGraph> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new GraphFormatError(file, `cannot read the graph file (${(e as Error).message}); pass an existing JSON/JSONL file with --graph`);
  }
  const graph = parseGraph(text, file);
  if (graph.entities.length === 0) {
    const first = graph.skipped[0];
    throw new GraphFormatError(file, `no usable entity records (${graph.skipped.length} skipped${first ? `; first: record ${first.record}: ${first.reason}` : ''}); expected CMeKG or QASystemOnMedicalKG records`);
  }
  return graph;
}

/**
 * The CMeKG-shaped knowledge of `entity` restricted to `attributes` (in the given order).
 * @example toCmekg(entity, ['药物治疗']) // { class: '疾病', 中心词: '高血压', 药物治疗: [...] }
 */
export function toCmekg(entity: KgEntity, attributes: readonly string[]): CmekgRecord {
  const out: Record<string, string | string[]> = { class: entity.rawClass, 中心词: entity.name };
  for (const a of attributes) {
    const values = entity.attributes[a];
    if (values === undefined) throw new Error(`internal: ${entity.name} has no attribute "${a}"`);
    out[a] = [...values];
  }
  return out as CmekgRecord;
}
