// The training half of the page: progress, the loss curve, the run's end, the adapter's summary,
// and the offer to resume a run stored in this browser.

import { adapterTensorsToWrite, describeTargets, type LlamaModel } from '@huatuo/llama';
import type { ProgressEvent } from '@huatuo/sft';
import { loadDemoModel } from './base-model.js';
import { drawLossCurve } from './chart.js';
import { fromText, loadDemoData } from './data-source.js';
import { byId, bytes, count, duration, messageOf, say } from './dom.js';
import { discardRun, knobsOf, runTraining, storedRun } from './run.js';
import { chooseBase, chooseData, setKnobs } from './setup-view.js';
import { fatal, refresh, state } from './state.js';

/** Updates the progress bar, tokens/s, ETA and the curve from one trainer event. */
export function onProgress(e: ProgressEvent, started: { at: number; step: number }): void {
  const stats = byId('train-stats');
  const bar = byId<HTMLProgressElement>('train-progress');
  bar.value = e.step / e.totalSteps;
  if (e.kind === 'log' && e.loss !== undefined) state.history.push({ step: e.step, loss: e.loss, lr: e.lr, tokensPerSec: e.tokensPerSec });
  if (e.kind === 'eval' && e.valLoss !== undefined) state.history.push({ step: e.step, valLoss: e.valLoss });
  const done = e.step - started.step;
  const perStep = done > 0 ? (performance.now() - started.at) / 1000 / done : NaN;
  const tps = [...state.history].reverse().find((r) => r.tokensPerSec !== undefined)?.tokensPerSec;
  if (e.kind !== 'save') {
    stats.textContent = `step ${e.step}/${e.totalSteps} · ${tps ? `${count(tps)} tok/s` : '–'} · ETA ${duration(perStep * (e.totalSteps - e.step))}`;
  }
  if (e.kind === 'save') stats.dataset.saved = String(e.step);
  drawLossCurve(byId('chart'), state.history, e.totalSteps);
}

/** Trains (or resumes) until the run ends or is paused or stopped; errors stop it with a message. */
export async function startTraining(resume: boolean): Promise<void> {
  if (!state.base || !state.source || !state.planned) return;
  state.busy = 'training';
  state.stopMode = '';
  state.controller = new AbortController();
  if (!resume) state.history = [];
  refresh();
  const started = { at: performance.now(), step: resume ? (state.history.at(-1)?.step ?? 0) : 0 };
  const stats = byId('train-stats');
  stats.textContent = resume ? 'Resuming from the stored checkpoint…' : 'Starting…';
  try {
    const { model, result } = await runTraining({
      base: state.base, source: state.source, planned: state.planned, resume, model: resume ? state.model : null,
      signal: state.controller.signal, onProgress: (e) => onProgress(e, started),
    });
    state.model = model;
    state.adapterLabel = `trained here, ${result.state.step} of ${result.state.totalSteps} steps`;
    const best = result.state.bestValLoss !== null ? `; best validation loss ${result.state.bestValLoss.toFixed(4)} at step ${result.state.bestStep}` : '';
    stats.textContent = result.interrupted
      ? `${(state.stopMode as string) === 'pause' ? 'Paused' : 'Stopped'} at step ${result.state.step}/${result.state.totalSteps}; the checkpoint is stored in this browser${best}`
      : `Done: ${result.state.totalSteps} steps${best}`;
    state.resumable = result.interrupted;
    describeAdapter();
  } catch (err) {
    stats.textContent = messageOf(err);
    if (!state.gpuDead) fatal('Training stopped', messageOf(err));
  } finally {
    state.busy = '';
    state.controller = null;
    refresh();
  }
}

/** Says what adapter the base model holds. */
export function describeAdapter(): void {
  const m: LlamaModel | undefined = state.base?.model;
  const cfg = m?.loraConfig;
  if (!m || !cfg) return;
  // What serializeAdapter writes, all f32: the LoRA matrices, DoRA's magnitudes and the trained copies of modules_to_save.
  const params = adapterTensorsToWrite(m).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const copies = [m.savedModules.embedTokens ? 'embed_tokens' : '', m.savedModules.lmHead ? 'lm_head' : ''].filter(Boolean);
  const withCopies = copies.length > 0 ? ` with the trained ${copies.join(' and ')}` : '';
  const variants = [cfg.useRslora ? 'rsLoRA' : '', cfg.useDora ? 'DoRA' : ''].filter(Boolean).join(', ');
  const tokenizer = m.savedModules.tokenizer;
  const vocabulary = tokenizer ? `; on its own vocabulary of ${m.config.vocabSize} pieces, with its tokenizer (${tokenizer.vocabSize} pieces)` : '';
  say(byId('adapter-status'), `LoRA r ${cfg.r}, alpha ${cfg.alpha} on ${describeTargets(cfg.targetModules)}${variants ? ` (${variants})` : ''}: ${count(params)} parameters${withCopies} (${bytes(params * 4)} in f32), ${state.adapterLabel}${vocabulary}`, 'ok');
}

/** Offers to resume the run stored in this browser, if there is one. */
export async function offerStoredRun(): Promise<void> {
  const stored = await storedRun();
  if (!stored) return;
  const { manifest } = stored;
  const banner = byId('resume-banner');
  byId('resume-text').textContent =
    `A run stopped at step ${stored.step} of ${manifest.totalSteps} is stored in this browser (${manifest.base.demo ? 'demo model' : manifest.base.name}, ${manifest.data.demo ? 'demo data' : manifest.data.file}).` +
    (manifest.base.demo ? '' : ` Pick the folder ${manifest.base.name} again, then resume.`);
  banner.hidden = false;
  byId('resume-run').onclick = async () => {
    setKnobs(knobsOf(manifest.config));
    if (manifest.base.demo && !state.base?.isDemo) await chooseBase(loadDemoModel, 'the demo model');
    if (!state.base || state.base.name !== manifest.base.name) {
      byId('resume-text').textContent = `The stored run was trained on ${manifest.base.name}: pick that folder in Base model, then press Resume here.`;
      return;
    }
    banner.hidden = true;
    await chooseData(() => (manifest.data.demo ? loadDemoData() : Promise.resolve(fromText(stored.dataText!, manifest.data.file, false))));
    state.history = stored.history.filter((r) => r.loss !== undefined || r.valLoss !== undefined);
    drawLossCurve(byId('chart'), state.history, manifest.totalSteps);
    state.resumable = true;
    await startTraining(true);
  };
  byId('discard-run').onclick = async () => {
    banner.hidden = true;
    await discardRun();
  };
}
