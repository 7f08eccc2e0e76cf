// A PEFT adapter folder for the small test model (trainer-setup.ts) that brings its own vocabulary, as
// Chinese-LLaMA-Alpaca's adapters do: LoRA on q_proj and v_proj, trained embed_tokens and lm_head on 32008 pieces, and
// the tokenizer it was trained with beside them: LLaMA's tokenizer.model with 8 added tokens (added_tokens.json),
// tokenizer_config.json, special_tokens_map.json and a chat_template.jinja.
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { llamaTokenizerDir, serializeSafetensors } from '@huatuo/llama';
import { tmp } from './trainer-setup.js';

/** Pieces of the resized vocabulary: LLaMA's 32000 and 8 added tokens `<med_0>` .. `<med_7>`. */
export const RESIZED_PIECES = 32008;
/** A text with an added token (id 32005), which the base's tokenizer splits into several pieces. */
export const RESIZED_TEXT = '头痛怎么办 <med_5> 多喝水';
/** The tokenizer files the folder holds. */
export const RESIZED_TOKENIZER_FILES = ['tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'chat_template.jinja'];

const values = (n: number, scale: number, phase: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i + phase) * scale);

/** Writes the folder (under a new temporary folder) and returns it. */
export function resizedAdapterFolder(): string {
  const dir = tmp('huatuo-resized-adapter-');
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'], modules_to_save: ['embed_tokens', 'lm_head'] }));
  const layer = (module: string, m: 'A' | 'B') => `base_model.model.model.layers.0.self_attn.${module}.lora_${m}.weight`;
  const tensors = [
    { name: layer('q_proj', 'A'), shape: [4, 32], data: values(128, 0.2, 0) },
    { name: layer('q_proj', 'B'), shape: [32, 4], data: values(128, 0.2, 1) },
    { name: layer('v_proj', 'A'), shape: [4, 32], data: values(128, 0.2, 2) },
    { name: layer('v_proj', 'B'), shape: [32, 4], data: values(128, 0.2, 3) },
    { name: 'base_model.model.model.embed_tokens.weight', shape: [RESIZED_PIECES, 32], data: values(RESIZED_PIECES * 32, 0.05, 4) },
    { name: 'base_model.model.lm_head.weight', shape: [RESIZED_PIECES, 32], data: values(RESIZED_PIECES * 32, 0.05, 5) },
  ];
  writeFileSync(join(dir, 'adapter_model.safetensors'), serializeSafetensors(tensors.map((t) => ({ ...t, dtype: 'F32' as const })), { metadata: { format: 'pt' } }));
  for (const f of ['tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(llamaTokenizerDir(), f), join(dir, f));
  // Written as transformers' older save_pretrained writes it: one line, no newline at the end.
  writeFileSync(join(dir, 'added_tokens.json'), JSON.stringify(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`<med_${i}>`, 32000 + i]))));
  writeFileSync(join(dir, 'chat_template.jinja'), "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}assistant:");
  return dir;
}
