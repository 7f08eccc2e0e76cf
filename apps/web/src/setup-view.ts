// The setup half of the page: base model, data, the recipe's knobs and the plan they give.

import { DataError, type BaseModel } from '@huatuo/sft';
import { describeModel } from './base-model.js';
import type { DataSource } from './data-source.js';
import { byId, count, messageOf, say } from './dom.js';
import { planTraining, recipe, type Knobs } from './run.js';
import { refresh, state } from './state.js';

/** The recipe knobs as the form holds them. */
export function knobs(): Knobs {
  const form = byId<HTMLFormElement>('knobs');
  const input = (name: string) => form.elements.namedItem(name) as HTMLInputElement;
  const v = (name: string) => Number(input(name).value);
  return {
    numEpochs: v('numEpochs'), learningRate: v('learningRate'), loraR: v('loraR'), loraAlpha: v('loraAlpha'),
    loraUseRslora: input('loraUseRslora').checked, loraUseDora: input('loraUseDora').checked,
    cutoffLen: v('cutoffLen'), batchSize: v('batchSize'), valSetSize: v('valSetSize'), evalSteps: v('evalSteps'),
  };
}

/** The GPU memory the plan may use, in bytes (WebGPU does not report it; the form says). */
export function gpuMemory(): number {
  return Number((byId<HTMLFormElement>('knobs').elements.namedItem('gpuMemory') as HTMLInputElement).value) * 2 ** 30;
}

/** Puts a run's knobs back into the form (resuming a stored run). */
export function setKnobs(k: Knobs): void {
  const form = byId<HTMLFormElement>('knobs');
  for (const [name, value] of Object.entries(k)) {
    const input = form.elements.namedItem(name) as HTMLInputElement;
    if (typeof value === 'boolean') input.checked = value;
    else input.value = String(value);
  }
}

/** Re-plans when the model, the data or a knob changes. */
export function replan(): void {
  const plan = byId('plan');
  state.planned = null;
  state.resumable = false;
  if (!state.base || !state.source) {
    say(plan, 'Choose a base model and data to see the memory plan.');
    return refresh();
  }
  try {
    const p = planTraining(state.base, state.source, recipe(knobs()), gpuMemory());
    state.planned = p;
    const s = p.plan.schedule;
    plan.classList.toggle('bad', p.refusal !== null);
    plan.innerHTML = '';
    const line = (label: string, text: string) => {
      const b = document.createElement('b');
      b.textContent = `${label} `;
      plan.append(b, text, document.createElement('br'));
    };
    const c = p.config;
    const scale = c.loraAlpha / (c.loraUseRslora ? Math.sqrt(c.loraR) : c.loraR);
    line('LoRA', `r ${c.loraR}, alpha ${c.loraAlpha} (scale ${Number(scale.toPrecision(4))}) on ${c.loraTargetModules.join(', ')}${c.loraUseRslora ? ', rsLoRA' : ''}${c.loraUseDora ? ', DoRA' : ''}`);
    line('Data', `${p.plan.records.train} training and ${p.plan.records.val} validation records, ${count(p.plan.tokens.train)} tokens (longest ${p.plan.tokens.longest})`);
    line('Steps', `${s.totalSteps} optimizer steps of ${p.config.batchSize} sequences (micro-batch ${s.microBatchSize} × ${s.gradientAccumulationSteps}), warm-up ${s.warmupSteps}`);
    line('Memory', p.plan.memory);
    if (p.refusal) line('Does not fit:', p.refusal);
  } catch (err) {
    plan.classList.add('bad');
    say(plan, messageOf(err));
  }
  refresh();
}

/** Loads a base model (disposing the previous one) and shows what it is, or why not. */
export async function chooseBase(load: () => Promise<BaseModel>, label: string): Promise<void> {
  const status = byId('model-status');
  const bar = byId<HTMLProgressElement>('model-progress');
  state.busy = 'loading';
  refresh();
  say(status, `Loading ${label}…`);
  bar.hidden = false;
  bar.value = 0;
  try {
    state.base?.model.dispose();
    state.base = null;
    state.model = null;
    state.base = await load();
    say(status, `${state.base.isDemo ? 'Tiny demo model' : state.base.name}: ${describeModel(state.base)}`, 'ok');
    byId('demo-model').classList.toggle('chosen', state.base.isDemo);
    say(byId('adapter-status'), 'No adapter yet: train one, or load a PEFT adapter.');
  } catch (err) {
    say(status, messageOf(err), 'bad');
  } finally {
    bar.hidden = true;
    state.busy = '';
    replan();
  }
}

/** Loads data and shows its records, or every problem with the line it is on. */
export async function chooseData(load: () => Promise<DataSource>): Promise<void> {
  const status = byId('data-status');
  const errors = byId('data-errors');
  const sample = byId('data-sample');
  errors.hidden = true;
  sample.hidden = true;
  try {
    state.source = await load();
    const r = state.source.records;
    say(status, `${state.source.demo ? 'Demo medical QA' : state.source.file}: ${r.length} records`, 'ok');
    byId('demo-data').classList.toggle('chosen', state.source.demo);
    sample.innerHTML = '';
    for (const rec of r.slice(0, 3)) {
      const p = document.createElement('p');
      const q = document.createElement('b');
      q.textContent = `${rec.instruction} `;
      p.append(q, rec.output);
      sample.append(p);
    }
    sample.hidden = false;
  } catch (err) {
    state.source = null;
    if (err instanceof DataError) {
      say(status, `${err.file}: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}; nothing was loaded`, 'bad');
      errors.innerHTML = '';
      for (const p of err.problems.slice(0, 12)) {
        const li = document.createElement('li');
        li.textContent = p;
        errors.append(li);
      }
      errors.hidden = false;
    } else say(status, messageOf(err), 'bad');
  }
  replan();
}
