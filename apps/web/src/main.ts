// The page: WebGPU first (or a message saying why not), then the controls of its cards wired to
// the views (setup, training, chat) and the adapter in and out. The work is in @huatuo/sft's trainer.

import { formatBytes, removeLora } from '@huatuo/llama';
import { LoraModel } from '@huatuo/sft';
import { folderName, loadDemoModel, loadFolderModel } from './base-model.js';
import { downloadAdapter, uploadAdapter } from './adapter-io.js';
import { drawLossCurve } from './chart.js';
import { ask } from './chat-view.js';
import { loadDataFile, loadDemoData } from './data-source.js';
import { byId, messageOf, say } from './dom.js';
import { GpuUnavailable, openGpu } from './gpu.js';
import { buildOptionFields, chooseBase, chooseData, gpuMemory, knobs, replan } from './setup-view.js';
import { fatal, refresh, state } from './state.js';
import { describeAdapter, offerStoredRun, startTraining } from './train-view.js';

function pickFiles(id: string, then: (files: File[]) => void): void {
  const input = byId<HTMLInputElement>(id);
  input.addEventListener('change', () => {
    const files = [...(input.files ?? [])];
    input.value = '';
    if (files.length) then(files);
  });
}

async function boot(): Promise<void> {
  buildOptionFields();
  const device = byId('device');
  window.addEventListener('unhandledrejection', (e) => fatal('Unexpected error', messageOf(e.reason)));
  window.addEventListener('error', (e) => {
    if (!/^ResizeObserver loop/.test(e.message)) fatal('Unexpected error', e.message);
  });
  drawLossCurve(byId('chart'), [], 1);
  let lastWidth = 0;
  new ResizeObserver(() =>
    requestAnimationFrame(() => {
      const w = byId('chart').clientWidth;
      if (w !== lastWidth) drawLossCurve(byId('chart'), state.history, state.planned?.plan.schedule.totalSteps ?? 1);
      lastWidth = w;
    }),
  ).observe(byId('chart'));
  refresh();
  try {
    const info = await openGpu((reason) => {
      state.gpuDead = true;
      state.controller?.abort();
      device.className = 'device bad';
      device.textContent = 'GPU device lost';
      fatal('The GPU device was lost', `WebGPU reported the device ${reason}. Work since the last checkpoint is gone; checkpoints are kept in this browser. Reload the page to open the GPU again and resume from the last checkpoint.`);
      refresh();
    });
    device.className = 'device ok';
    device.textContent = `${info.adapterName} · ${info.features.has('shader-f16') ? 'f16' : 'f32 only'} · max buffer ${formatBytes(info.maxBufferSize)}`;
  } catch (err) {
    state.gpuDead = true;
    device.className = 'device bad';
    device.textContent = 'No WebGPU';
    if (err instanceof GpuUnavailable) fatal(err.title, err.message);
    else fatal('WebGPU could not start', `${messageOf(err)}. Reload the page; if it persists, restart the browser.`);
    refresh();
    return;
  }
  byId('demo-model').addEventListener('click', () => void chooseBase(loadDemoModel, 'the demo model'));
  const folder = (files: File[]) =>
    void chooseBase(() => {
      const k = knobs();
      return loadFolderModel(files, { trustTokenizerPatterns: byId<HTMLInputElement>('trust-model-patterns').checked }, k.cutoffLen, { r: k.loraR, targetModules: ['q_proj', 'v_proj'], useDora: k.loraUseDora }, gpuMemory(), (f) => (byId<HTMLProgressElement>('model-progress').value = f));
    }, folderName(files));
  pickFiles('model-folder', folder);
  pickFiles('model-files', folder);
  byId('demo-data').addEventListener('click', () => void chooseData(loadDemoData));
  pickFiles('data-file', (files) => void chooseData(() => loadDataFile(files[0]!)));
  byId('knobs').addEventListener('change', replan);
  byId('train').addEventListener('click', () => void startTraining(false));
  byId('resume').addEventListener('click', () => void startTraining(true));
  for (const mode of ['pause', 'stop'] as const) {
    byId(mode).addEventListener('click', () => {
      state.stopMode = mode;
      byId('train-stats').textContent = `${mode === 'pause' ? 'Pausing' : 'Stopping'} after this step (writing a checkpoint)…`;
      state.controller?.abort();
      refresh();
    });
  }
  byId('chat-form').addEventListener('submit', (e) => void ask(e as SubmitEvent));
  for (const which of ['config', 'weights'] as const) {
    byId(`download-${which}`).addEventListener('click', () => void downloadAdapter(state.base!.model, state.base!.name, which).catch((err) => say(byId('adapter-status'), messageOf(err), 'bad')));
  }
  byId('download-tokenizer').addEventListener('click', (e) => {
    const tokenizerFile = (e.target as HTMLElement).closest('button')?.dataset.file;
    if (tokenizerFile !== undefined) void downloadAdapter(state.base!.model, state.base!.name, { tokenizerFile }).catch((err) => say(byId('adapter-status'), messageOf(err), 'bad'));
  });
  const adapterIn = async (files: File[]) => {
    if (!state.base) return say(byId('adapter-status'), 'Choose a base model first; the adapter attaches to it.', 'bad');
    try {
      const from = await uploadAdapter(state.base, files, { trustTokenizerPatterns: byId<HTMLInputElement>('trust-adapter-patterns').checked });
      state.model = new LoraModel(state.base.model, state.base.name);
      state.adapterLabel = `loaded from ${from}`;
      state.resumable = false;
      describeAdapter();
    } catch (err) {
      say(byId('adapter-status'), messageOf(err), 'bad');
    }
    refresh();
  };
  byId('remove-adapter').addEventListener('click', () => {
    if (!state.base) return;
    // The base's own embed_tokens, lm_head, vocabulary and tokenizer are used again.
    removeLora(state.base.model);
    state.model = null;
    state.adapterLabel = '';
    state.resumable = false;
    say(byId('adapter-status'), 'Adapter removed: the base model answers with its own vocabulary and tokenizer. Train one, or load a PEFT adapter.');
    refresh();
  });
  pickFiles('adapter-folder', (f) => void adapterIn(f));
  pickFiles('adapter-files', (f) => void adapterIn(f));
  refresh();
  await offerStoredRun();
}

void boot();
