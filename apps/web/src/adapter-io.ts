// The adapter in and out of the page: downloads of adapter_config.json and adapter_model.safetensors, with
// the tokenizer files of an adapter that brings its own vocabulary (the bytes Node's saveAdapter writes), and
// a PEFT adapter folder or its files loaded from disk (adapter_model.safetensors, or the older
// adapter_model.bin). An adapter's trained embed_tokens and lm_head (PEFT's modules_to_save) come and go
// with it; one trained on a resized vocabulary (as Chinese-LLaMA-Alpaca's) brings the tokenizer picked
// with it, used while it is attached, as Node's loadAdapterWithTokenizer does, and with the chat template
// of its folder.

import {
  adapterConfigName,
  adapterConfigText,
  adapterTorchWeightsName,
  adapterWeightsName,
  blobSource,
  loadAdapterFromFiles,
  pickedFolderFiles,
  pickedFolderOf,
  pickedSubfoldersHolding,
  saveStagingName,
  serializeAdapter,
  type LlamaModel,
  type TokenizerLoadOptions,
} from '@huatuo/llama';
import { adapterTokenizerOptions, type BaseModel } from '@huatuo/sft';
import { inPageTerms } from './base-model.js';
import { download } from './dom.js';
import { keepFolderChatTemplate } from './model-chat-template.js';

/**
 * The tokenizer files the model's adapter is saved with (serializeAdapter's `tokenizer`, what saveAdapter writes beside
 * it): those it was loaded with where it brings its own vocabulary, none for an adapter on the base's vocabulary.
 */
export function adapterTokenizerFileNames(model: LlamaModel): string[] {
  return model.loraConfig === null ? [] : [...(model.savedModules.tokenizerFiles ?? new Map<string, Uint8Array>()).keys()];
}

/**
 * Offers one file of the model's adapter: PEFT's adapter_config.json or adapter_model.safetensors, or one of
 * {@link adapterTokenizerFileNames} by name, byte for byte what saveAdapter writes.
 */
export async function downloadAdapter(model: LlamaModel, baseName: string, which: 'config' | 'weights' | { tokenizerFile: string }): Promise<void> {
  if (which === 'config') return download(adapterConfigName, adapterConfigText(model, baseName), 'application/json');
  if (which === 'weights') return download(adapterWeightsName, (await serializeAdapter(model, baseName)).weights, 'application/octet-stream');
  const bytes = model.savedModules.tokenizerFiles?.get(which.tokenizerFile);
  if (bytes === undefined) throw new Error(`internal: the adapter has no tokenizer file ${which.tokenizerFile}`);
  download(which.tokenizerFile, new Uint8Array(bytes), 'application/octet-stream');
}

/**
 * Shows a download button per tokenizer file of the model's adapter (`names`, see {@link adapterTokenizerFileNames})
 * after the text of `row`, the row hidden when there are none, the buttons enabled when the page is idle.
 */
export function offerTokenizerDownloads(row: HTMLElement, names: readonly string[], enabled: boolean): void {
  const offered = [...row.querySelectorAll('button')].map((b) => b.dataset.file);
  if (offered.join('\n') !== names.join('\n')) {
    for (const button of row.querySelectorAll('button')) button.remove();
    for (const name of names) {
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.file = name;
      button.textContent = `⤓ ${name}`;
      row.append(button);
    }
  }
  row.hidden = names.length === 0;
  for (const button of row.querySelectorAll('button')) button.disabled = !enabled;
}

/** The folder a picked file belongs to: its own, or for a file of a save's staging folder, the folder saved into. */
function savedFolderOf(file: File): string {
  const folder = pickedFolderOf(file);
  if (folder === saveStagingName) return '';
  return folder.endsWith(`/${saveStagingName}`) ? folder.slice(0, -saveStagingName.length - 1) : folder;
}

/**
 * Loads a PEFT adapter from picked files (a folder, or its files one by one), replacing the base model's adapter.
 * Where its trained embed_tokens resizes the vocabulary, the tokenizer picked with it (tokenizer.model or
 * tokenizer.json beside adapter_config.json) is `base.tokenizer` until the adapter is removed or replaced;
 * `tokenizerOptions.trustTokenizerPatterns` runs its tokenizer.json's regular expressions as written (the box
 * under the adapter pickers); the chat template beside it (chat_template.jinja, or tokenizer_config.json's "chat_template") is
 * then the one the model's chat template answers with. Returns what it was loaded from, for the page to say.
 */
export async function uploadAdapter(base: BaseModel, files: readonly File[], tokenizerOptions: TokenizerLoadOptions): Promise<string> {
  const picked = files.map((f) => f.name).join(', ') || 'no files';
  const configs = files.filter((f) => f.name === adapterConfigName);
  // The picked folder's own adapter, else the one subfolder holding one (a checkpoint's); of several, the user picks one.
  const { folders, advice } = pickedSubfoldersHolding(files, adapterConfigName, (n) => n === adapterConfigName);
  const own = configs.find((f) => savedFolderOf(f) === pickedFolderOf(f) && !folders.includes(pickedFolderOf(f)));
  if (!own && folders.length > 1) throw new Error(`no ${adapterConfigName} among the picked folder's own files, and several of its subfolders hold one; ${advice}`);
  const found = own ?? configs.find((f) => pickedFolderOf(f) === folders[0]) ?? configs[0];
  if (!found) throw new Error(`no ${adapterConfigName} among the picked files (${picked}); pick a PEFT adapter folder`);
  // The adapter's files are those beside its adapter_config.json, read as Node reads them where a save into the folder
  // was interrupted (a staging folder's files are not the adapter's).
  const folder = savedFolderOf(found);
  const { files: beside, save } = await pickedFolderFiles(files, folder);
  const config = beside.get(adapterConfigName);
  if (!config) {
    throw new Error(
      `${folder || 'the picked folder'} holds no ${adapterConfigName} of its own: a save of an adapter into it was interrupted before its files were all written (${found.name} is in ${saveStagingName}, which is not read); pick a folder holding a whole adapter, or save the adapter there again`,
    );
  }
  const weights = beside.get(adapterWeightsName) ?? beside.get(adapterTorchWeightsName);
  if (!weights) throw new Error(`no ${adapterWeightsName} or ${adapterTorchWeightsName} beside ${folder ? `${folder}/` : ''}${adapterConfigName} among the picked files (${picked}); pick a PEFT adapter folder`);
  // A save committed but not completed is read as completed; the folder itself changes only when Node loads or saves it.
  const from = `${folder || config.name}${save === 'committed' ? ` (as a save into it completes, which was interrupted after its files were all written; a load or save of the folder in Node completes it there)` : ''}`;
  const tokenizerFiles = adapterTokenizerOptions({
    read: async (name) => {
      const file = beside.get(name);
      return file ? new Uint8Array(await file.arrayBuffer()) : undefined;
    },
    where: folder || 'the picked adapter',
    whenMissing:
      `pick the adapter folder holding the tokenizer it was trained with (tokenizer.model or tokenizer.json, with tokenizer_config.json and special_tokens_map.json where it has them), ` +
      `or pick those files together with ${adapterConfigName} and ${weights.name}`,
    refusal: (message) => new Error(message),
  }, tokenizerOptions);
  try {
    await loadAdapterFromFiles(base.model, await config.text(), config.name, blobSource(weights), tokenizerFiles);
  } catch (err) {
    throw inPageTerms(err, 'under the adapter pickers');
  }
  const ownTokenizer = base.model.savedModules.tokenizer;
  if (ownTokenizer) await keepFolderChatTemplate(ownTokenizer, async (name) => beside.get(name)?.text(), folder || 'the picked adapter');
  return from;
}
