/**
 * Shared set-up of the tokenizer tests: LLaMA's tokenizer through both file
 * formats from the package's assets, the llama-tokenizer-js oracle, and a
 * generator of mixed Chinese/English/whitespace/emoji text.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import llamaTokenizer from 'llama-tokenizer-js';
import { HfTokenizer, SentencePieceTokenizer, llamaTokenizerDir } from '@huatuo/llama';

const dir = llamaTokenizerDir();

/** LLaMA's tokenizer from the shipped tokenizer.json (with tokenizer_config.json). */
export const hf = HfTokenizer.fromJson(
  readFileSync(`${dir}/tokenizer.json`, 'utf8'),
  JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, 'utf8')),
);

/** LLaMA's tokenizer from the shipped tokenizer.model. */
export const sp = SentencePieceTokenizer.fromBytes(new Uint8Array(readFileSync(`${dir}/tokenizer.model`)));

export const both = [
  ['tokenizer.json (HfTokenizer)', hf],
  ['tokenizer.model (SentencePieceTokenizer)', sp],
] as const;

/**
 * The oracle's ids with BOS. llama-tokenizer-js gives [] for '' (no BOS),
 * where SentencePiece and Hugging Face give just BOS; that one case is mapped.
 */
export function oracle(text: string): number[] {
  return text.length === 0 ? [1] : llamaTokenizer.encode(text, true, true);
}

const fragments = [
  'a', 'b', 'x', 'the', 'The', 'Hello', 'world', 'ing', 'tion', 'COVID-19', 'mg/kg', 'http://a.b/c?d=1',
  ' ', '  ', '   ', '    ', '\n', '\n\n', '\t', '\r\n', '\u3000', '\u00a0',
  '中', '国', '医', '生', '癌', '肝', '症状', '治疗', '患者', '饕', '鬱', '𠀀', '。', '，', '？', '：', '（', '）', '“', '”',
  '😀', '👍🏽', '👨‍👩‍👧', '🇨🇳', '🩺', '❤️', '∑', 'ℂ', '𝔸',
  'é', 'e\u0301', 'ñ', 'ß', 'Ω', 'я', 'ا', 'क',
  '0', '1', '23', '3.14', '.', ',', '!', '?', '-', '(', ')', '"', "'", '#', '<', '>', '/', '\\', '_', '▁',
];

/** Text mixing Chinese, English, whitespace runs, newlines and emoji (including leading and trailing spaces). */
export const mixedText = fc.array(fc.constantFrom(...fragments), { maxLength: 40 }).map((parts) => parts.join(''));
