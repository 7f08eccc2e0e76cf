// The page's state and the controls it enables: one object, one refresh, one fatal message.

import type { BaseModel, LoraModel, MetricsRow } from '@huatuo/sft';
import type { DataSource } from './data-source.js';
import { adapterTokenizerFileNames, offerTokenizerDownloads } from './adapter-io.js';
import { byId } from './dom.js';
import { chatTemplateName, offersChatTemplate } from './model-chat-template.js';
import type { Planned } from './run.js';

/** Everything the page knows; the views read and write it, then call {@link refresh}. */
export const state = {
  base: null as BaseModel | null,
  source: null as DataSource | null,
  planned: null as Planned | null,
  model: null as LoraModel | null,
  adapterLabel: '',
  history: [] as MetricsRow[],
  busy: '' as '' | 'loading' | 'training' | 'chatting',
  controller: null as AbortController | null,
  stopMode: '' as '' | 'pause' | 'stop',
  resumable: false,
  gpuDead: false,
};

const buttons = ['demo-model', 'demo-data', 'train', 'pause', 'resume', 'stop', 'ask', 'download-config', 'download-weights', 'remove-adapter', 'resume-run', 'discard-run'];
const pickers = ['model-folder', 'model-files', 'trust-model-patterns', 'data-file', 'adapter-folder', 'adapter-files', 'trust-adapter-patterns'];

/** Shows a message that stops the page's work, with what to do. */
export function fatal(title: string, text: string): void {
  const el = byId('fatal');
  el.hidden = false;
  el.innerHTML = '';
  const strong = document.createElement('strong');
  strong.textContent = title;
  el.append(strong, text);
}

/** Enables exactly the controls that make sense now. */
export function refresh(): void {
  const idle = state.busy === '' && !state.gpuDead;
  const set = (id: string, on: boolean) => ((byId<HTMLButtonElement>(id).disabled = !on));
  for (const id of buttons) set(id, idle);
  for (const id of pickers) byId<HTMLInputElement>(id).disabled = !idle;
  set('train', idle && state.planned !== null && state.planned.refusal === null);
  set('pause', state.busy === 'training' && state.controller !== null && !state.stopMode);
  set('stop', state.busy === 'training' && state.controller !== null && !state.stopMode);
  set('resume', idle && state.resumable && state.planned !== null);
  set('ask', idle && state.base !== null);
  const hasAdapter = state.base !== null && state.base.model.loraConfig !== null;
  set('download-config', idle && hasAdapter);
  set('download-weights', idle && hasAdapter);
  offerTokenizerDownloads(byId('download-tokenizer'), state.base === null ? [] : adapterTokenizerFileNames(state.base.model), idle);
  set('remove-adapter', idle && hasAdapter);
  byId('prompt-choice').hidden = state.base === null || !offersChatTemplate(state.base);
  byId('chat-template-name').textContent = state.base === null ? '' : chatTemplateName(state.base);
  document.body.dataset.busy = state.busy;
  for (const el of document.querySelectorAll<HTMLInputElement | HTMLSelectElement>('#knobs input, #knobs select')) el.disabled = state.busy === 'training';
}
