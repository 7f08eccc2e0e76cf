// Offline generation: deterministic question/answer templates per class and
// attribute, whose answers list exactly the graph's values.

import type { EntityClass } from './graph.js';
import type { KnowledgeSample } from './sample.js';

/** A question/answer pair made from a sample. */
export interface QaPair {
  question: string;
  answer: string;
}

interface AttributeTemplate {
  /** Patient-style questions; `{x}` is the entity name. */
  questions: readonly string[];
  /** The same question as a follow-up, without the entity name. */
  followUp: string;
  /** Answer sentence; `{x}` is the entity name, `{v}` the values joined by "、". */
  answer: string;
}

const T = (questions: string[], followUp: string, answer: string): AttributeTemplate => ({ questions, followUp, answer });

const TEMPLATES: Record<EntityClass, Record<string, AttributeTemplate>> = {
  disease: {
    发病部位: T(['{x}主要发生在身体哪个部位？', '{x}是哪个部位的病？'], '主要累及哪个部位？', '{x}主要累及的部位是：{v}。'),
    典型症状: T(['{x}有哪些典型症状？', '得了{x}一般会有什么表现？', '怎么判断自己是不是得了{x}，常见症状有哪些？'], '常见症状有哪些？', '{x}的典型症状包括：{v}。'),
    高危因素: T(['哪些人容易得{x}？', '{x}的高危因素有哪些？'], '哪些因素会增加患病风险？', '{x}的高危因素包括：{v}。'),
    病因: T(['{x}是什么原因引起的？', '为什么会得{x}？'], '病因是什么？', '{x}的病因包括：{v}。'),
    辅助检查: T(['怀疑{x}需要做哪些检查？', '{x}要做什么检查才能确诊？'], '需要做哪些检查？', '{x}常用的检查包括：{v}。'),
    药物治疗: T(['{x}的药物治疗有哪些？', '{x}一般用什么药？', '得了{x}可以吃哪些药？'], '一般用哪些药？', '{x}的药物治疗可选用：{v}。具体用药和剂量请遵医嘱。'),
    治疗方式: T(['{x}怎么治疗？', '{x}有哪些治疗方法？'], '有哪些治疗方法？', '{x}的治疗方式包括：{v}。'),
    就诊科室: T(['得了{x}应该挂哪个科？', '{x}去医院看哪个科室？'], '应该看哪个科？', '{x}可到以下科室就诊：{v}。'),
    并发症: T(['{x}会引起哪些并发症？', '{x}不治疗会有什么后果？'], '可能有哪些并发症？', '{x}可能出现的并发症包括：{v}。'),
    预防: T(['{x}怎么预防？', '平时怎样做才能预防{x}？'], '平时怎么预防？', '预防{x}的措施包括：{v}。'),
  },
  drug: {
    药物类别: T(['{x}是什么类型的药？', '{x}属于哪一类药物？'], '属于哪类药？', '{x}属于：{v}。'),
    适应症: T(['{x}是治什么病的？', '{x}的适应症有哪些？', '医生给我开了{x}，这个药主要用来治什么？'], '主要治什么？', '{x}的适应症包括：{v}。'),
    用法用量: T(['{x}一般怎么用？', '{x}的用法用量是怎样的？'], '一般怎么用？', '{x}的一般用法：{v}。具体剂量请遵医嘱或按说明书使用。'),
    不良反应: T(['{x}有哪些副作用？', '吃{x}会有什么不良反应？'], '有哪些副作用？', '{x}可能的不良反应包括：{v}。'),
    禁忌: T(['哪些人不能用{x}？', '{x}有哪些禁忌？'], '哪些人不能用？', '{x}的禁忌包括：{v}。'),
    注意事项: T(['使用{x}要注意什么？', '吃{x}期间有什么需要注意的？'], '用药期间要注意什么？', '使用{x}的注意事项：{v}。'),
  },
  symptom: {
    可能病因: T(['{x}可能是什么病引起的？', '最近总是{x}，会是什么原因？', '出现{x}可能有哪些原因？'], '可能是什么原因？', '{x}的可能病因包括：{v}。'),
    伴随症状: T(['{x}常常还会伴有哪些症状？', '{x}的时候还可能出现什么不舒服？'], '常伴有哪些症状？', '{x}常见的伴随症状有：{v}。'),
    就诊科室: T(['出现{x}应该去哪个科室看？', '{x}挂什么科？'], '应该看哪个科？', '出现{x}可到以下科室就诊：{v}。'),
    相关检查: T(['{x}需要做哪些检查？', '因为{x}去医院，一般会查什么？'], '一般要做哪些检查？', '针对{x}常做的检查包括：{v}。'),
    发生部位: T(['{x}一般发生在哪里？'], '一般发生在哪里？', '{x}常见的部位是：{v}。'),
  },
};

function generic(attribute: string): AttributeTemplate {
  return T([`{x}的${attribute}是什么？`, `请问{x}的${attribute}有哪些？`], `${attribute}是什么？`, `{x}的${attribute}：{v}。`);
}

/** The template used for a class and attribute (a generic one for unknown attributes). */
function templateFor(kind: EntityClass, attribute: string): AttributeTemplate {
  return TEMPLATES[kind][attribute] ?? generic(attribute);
}

function fill(text: string, name: string, values?: readonly string[]): string {
  return text.replaceAll('{x}', name).replaceAll('{v}', values === undefined ? '' : values.join('、'));
}

/**
 * A templated question/answer for a sample. The question variant is chosen by
 * `variant` (any integer; the generator derives it from its seeded generator);
 * the answer states every value of every sampled attribute, verbatim and only those.
 * @example
 * templateQa({ entity: hypertension, attributes: ['药物治疗'], key }, 0).answer
 * // '高血压的药物治疗可选用：氨氯地平、厄贝沙坦。具体用药和剂量请遵医嘱。'
 */
export function templateQa(sample: KnowledgeSample, variant: number): QaPair {
  const { entity, attributes } = sample;
  const parts: string[] = [];
  const answers: string[] = [];
  attributes.forEach((attribute, i) => {
    const t = templateFor(entity.kind, attribute);
    const values = entity.attributes[attribute];
    if (values === undefined) throw new Error(`internal: sample of ${entity.name} names missing attribute "${attribute}"`);
    if (i === 0) {
      const q = t.questions[Math.abs(variant) % t.questions.length] as string;
      parts.push(fill(q, entity.name));
    } else {
      parts.push(`另外，${t.followUp}`);
    }
    answers.push(fill(t.answer, entity.name, values));
  });
  return { question: parts.join(''), answer: answers.join('') };
}
