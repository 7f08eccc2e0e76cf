// The base model of the page: the built-in tiny demo (LLaMA's tokenizer, random weights from a
// fixed seed, the same model Node builds) or a Hugging Face LLaMA folder picked from disk, whose
// safetensors (or PyTorch .bin) are read tensor by tensor through Blob slices.

import {
  checkMemoryPlan,
  formatBytes,
  loadLlamaFromCheckpoint,
  openCheckpointFromFiles,
  parseLlamaConfig,
  pickedFolderFiles,
  pickedSubfoldersHolding,
  planMemory,
  saveStagingName,
  withGenerationConfig,
  readTokenizerFiles,
  tokenizerFromFiles,
  TokenizerError,
  type LlamaConfig,
  type LoraTargetModule,
  type TokenizerFiles,
  type TokenizerLoadOptions,
} from '@huatuo/llama';
import { baseModelOf, demoBaseModel, type BaseModel } from '@huatuo/sft';
import { deviceInfo, hasF16 } from '@huatuo/tensor';
import { keepFolderChatTemplate } from './model-chat-template.js';

let demoTokenizer: Promise<TokenizerFiles> | null = null;

/** The decoded JSON of a picked file; `label` names it in the error. */
async function jsonOf(file: File, label: string): Promise<unknown> {
  try {
    return JSON.parse(await file.text());
  } catch (err) {
    throw new Error(`${label}: not valid JSON (${(err as Error).message})`);
  }
}

/** LLaMA's SentencePiece tokenizer.model, served beside the page. */
async function demoTokenizerFiles(): Promise<TokenizerFiles> {
  demoTokenizer ??= fetch('assets/tokenizer.model').then(async (r) => {
    if (!r.ok) throw new Error(`assets/tokenizer.model: the server answered ${r.status}; rebuild the page (npm run web)`);
    return { tokenizerModel: new Uint8Array(await r.arrayBuffer()) };
  });
  return demoTokenizer;
}

/**
 * A tokenizer.json refused for a regular expression not known to run in linear time, told in the page's terms: where
 * the library names the command line's --trust-tokenizer-patterns, the page has the box "Trust this folder's tokenizer
 * patterns" `where` (e.g. "under the base model"). Any other error is returned as it is.
 */
export function inPageTerms(err: unknown, where: string): unknown {
  if (!(err instanceof TokenizerError) || !err.message.includes('--trust-tokenizer-patterns')) return err;
  const box = `the box "Trust this folder's tokenizer patterns" ${where} ticked`;
  return new TokenizerError(err.message.replace(/--trust-tokenizer-patterns(?: \(the option trustTokenizerPatterns\))?/, box), { file: err.file, cause: err });
}

/** The demo base model. */
export async function loadDemoModel(): Promise<BaseModel> {
  return demoBaseModel(tokenizerFromFiles(await demoTokenizerFiles(), 'tokenizer.model'));
}

/** Parameters of a LLaMA config (weights only). */
export function parameterCount(c: LlamaConfig): number {
  const attn = c.hiddenSize * c.numAttentionHeads * c.headDim * 2 + c.hiddenSize * c.numKeyValueHeads * c.headDim * 2;
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  return c.numHiddenLayers * (attn + mlp + 2 * c.hiddenSize) + c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2) + c.hiddenSize;
}

/** The folder's name from the files a directory input gave. */
export function folderName(files: readonly File[]): string {
  const rel = (files[0] as File & { webkitRelativePath?: string })?.webkitRelativePath ?? '';
  return rel.includes('/') ? rel.split('/')[0]! : 'picked files';
}

/**
 * Loads a Hugging Face LLaMA folder's files (config.json, tokenizer and its chat template where it has one, safetensors
 * or .bin shards). Before
 * any weight is read, a training step of one sequence of `cutoffLen` tokens must fit the adapter
 * and `gpuMemory` bytes. `tokenizerOptions.trustTokenizerPatterns` runs the tokenizer.json's regular
 * expressions as written (the box under the base model pickers).
 */
export async function loadFolderModel(
  files: readonly File[],
  tokenizerOptions: TokenizerLoadOptions,
  cutoffLen: number,
  lora: { r: number; targetModules: LoraTargetModule[]; useDora?: boolean },
  gpuMemory: number,
  onProgress: (fraction: number) => void,
): Promise<BaseModel> {
  const name = folderName(files);
  // The folder's own files, as Node reads it: a save interrupted there is read as its commit leaves the folder.
  const { files: byName, save } = await pickedFolderFiles(files);
  const configFile = byName.get('config.json');
  if (!configFile) {
    const interrupted = save === 'uncommitted' ? ` (a save of a model into it was interrupted before its files were all written: ${saveStagingName} is not read; save the model there again)` : '';
    const { advice } = pickedSubfoldersHolding(files, 'config.json', (n) => n === 'config.json');
    if (advice !== '') throw new Error(`${name}: no config.json among its own files (its subfolders' are not read)${interrupted}; ${advice}`);
    throw new Error(`${name}: no config.json among the ${files.length} files${interrupted}; pick the folder of a Hugging Face LLaMA model`);
  }
  const read = async (n: string) => (byName.has(n) ? new Uint8Array(await byName.get(n)!.arrayBuffer()) : undefined);
  let config = parseLlamaConfig(await jsonOf(configFile, `${name}/config.json`), `${name}/config.json`);
  const generationFile = byName.get('generation_config.json');
  if (generationFile) config = withGenerationConfig(config, await jsonOf(generationFile, `${name}/generation_config.json`), `${name}/generation_config.json`);
  const tokenizerFiles = await readTokenizerFiles(read);
  if (!tokenizerFiles) throw new Error(`${name}: no tokenizer.json or tokenizer.model among the ${files.length} files; pick the whole folder of a Hugging Face LLaMA model, tokenizer included`);
  let tokenizer;
  try {
    tokenizer = tokenizerFromFiles(tokenizerFiles, name, tokenizerOptions);
  } catch (err) {
    throw inPageTerms(err, 'under the base model');
  }
  await keepFolderChatTemplate(tokenizer, async (n) => byName.get(n)?.text(), name);
  const dtype = hasF16() ? 'f16' : 'f32';
  const info = deviceInfo()!;
  const limits = { maxBufferSize: info.maxBufferSize, maxStorageBufferBindingSize: info.maxStorageBufferBindingSize, totalMemory: gpuMemory };
  const plan = planMemory(config, { batchSize: 1, seqLen: cutoffLen, dtype, lora, training: true }, limits);
  checkMemoryPlan(plan, limits, `${name} (${dtype}, one sequence of ${cutoffLen} tokens)`);
  const ckpt = await openCheckpointFromFiles(files);
  try {
    const model = await loadLlamaFromCheckpoint(ckpt, config, name, {
      dtype,
      onProgress: (p) => onProgress(p.totalBytes ? p.bytesRead / p.totalBytes : 0),
    });
    return baseModelOf(model, tokenizer, name, false);
  } finally {
    await ckpt.close();
  }
}

/** "2 layers, hidden 64, 32000 vocab, 4.3 M parameters, f32". */
export function describeModel(base: BaseModel): string {
  const c = base.model.config;
  const params = parameterCount(c);
  const bytes = params * (base.model.dtype === 'f16' ? 2 : 4);
  return `${c.numHiddenLayers} layer${c.numHiddenLayers === 1 ? '' : 's'}, hidden ${c.hiddenSize}, vocabulary ${c.vocabSize}, ${(params / 1e6).toFixed(params < 1e8 ? 2 : 0)} M parameters, ${base.model.dtype} (${formatBytes(bytes)})`;
}
