// The setup half of the page: base model, data, the recipe's knobs and the plan they give.

import { CONFIG_OPTIONS, ConfigError, DataError, DEFAULT_CONFIG, LR_SCHEDULER_KWARGS, WSD_CURVES, type BaseModel, type ConfigOption, type LrSchedulerType, type TrainConfig } from '@huatuo/sft';
import { describeModel } from './base-model.js';
import type { DataSource } from './data-source.js';
import { byId, count, messageOf, say } from './dom.js';
import { knobsOf, planTraining, recipe, type Knobs } from './run.js';
import { refresh, state } from './state.js';

/** The form's fields by TrainConfig key (the kwargs' as lrSchedulerKwargs.<name>). */
function field(name: string): HTMLInputElement | HTMLSelectElement {
  return byId<HTMLFormElement>('knobs').elements.namedItem(name) as HTMLInputElement | HTMLSelectElement;
}

/** Every argument any schedule takes (num_cycles, lr_end, power, ...), a field each. */
const SCHEDULER_KWARG_NAMES = [...new Set(Object.values(LR_SCHEDULER_KWARGS).flatMap((kwargs) => Object.keys(kwargs)))];

/** The arguments that are names, not numbers (warmup_stable_decay's warmup_type and decay_type): a curve each, by its default. */
const SCHEDULER_KWARG_CURVES = new Map(
  Object.values(LR_SCHEDULER_KWARGS).flatMap((kwargs) => Object.entries(kwargs).flatMap(([name, value]) => (typeof value === 'string' ? [[name, value] as const] : []))),
);

function optionOf(key: keyof TrainConfig): ConfigOption {
  const option = CONFIG_OPTIONS.find((o) => o.key === key);
  if (!option) throw new Error(`the form names ${key}, which is not among the trainer's options`);
  return option;
}

/** The control of a trainer option, made from its CONFIG_OPTIONS entry: choices, bounds, help and the recipe's value. */
function controlFor(option: ConfigOption): HTMLInputElement | HTMLSelectElement {
  const value = DEFAULT_CONFIG[option.key];
  if (option.choices) {
    const select = document.createElement('select');
    for (const choice of option.choices) select.append(new Option(choice, choice));
    select.value = String(value);
    return select;
  }
  const input = document.createElement('input');
  if (option.kind === 'bool') {
    input.type = 'checkbox';
    input.checked = value === true;
    return input;
  }
  input.type = option.kind === 'int' || option.kind === 'number' ? 'number' : 'text';
  if (input.type === 'number') {
    input.step = option.kind === 'int' ? '1' : 'any';
    const min = option.min ?? option.above;
    if (min !== undefined) input.min = String(min);
    const max = option.max ?? option.below;
    if (max !== undefined) input.max = String(max);
  }
  input.value = String(value);
  return input;
}

/**
 * Fills the form's `label[data-option]` placeholders with the controls of those trainer options, so
 * that their choices, bounds and help are the command line's. The schedule's arguments get a field
 * each, shown for the schedules that take it.
 */
export function buildOptionFields(): void {
  const form = byId<HTMLFormElement>('knobs');
  for (const label of form.querySelectorAll<HTMLLabelElement>('label[data-option]')) {
    const option = optionOf(label.dataset.option as keyof TrainConfig);
    label.title = `${option.flag}: ${option.help}`;
    if (option.key === 'lrSchedulerKwargs') {
      for (const name of SCHEDULER_KWARG_NAMES) {
        const kwarg = document.createElement('label');
        kwarg.dataset.kwarg = name;
        kwarg.title = label.title;
        kwarg.append(`${name} `, kwargControl(name));
        label.before(kwarg);
      }
      label.remove();
      continue;
    }
    const control = controlFor(option);
    control.name = option.key;
    label.append(control);
  }
  field('lrSchedulerType').addEventListener('change', showSchedulerKwargs);
  showSchedulerKwargs();
}

/** The field of a schedule's argument: a choice of the curves for a name, else a number, empty for its default. */
function kwargControl(name: string): HTMLInputElement | HTMLSelectElement {
  const curve = SCHEDULER_KWARG_CURVES.get(name);
  if (curve !== undefined) {
    const select = document.createElement('select');
    for (const choice of WSD_CURVES) select.append(new Option(choice, choice));
    select.name = `lrSchedulerKwargs.${name}`;
    select.value = curve;
    return select;
  }
  const input = document.createElement('input');
  input.name = `lrSchedulerKwargs.${name}`;
  input.type = 'number';
  input.step = 'any';
  return input;
}

/**
 * Shows the argument fields the chosen schedule takes, each number with its default as placeholder
 * (none where transformers' default is None: the argument is needed, or its default follows from others).
 */
function showSchedulerKwargs(): void {
  const accepted = LR_SCHEDULER_KWARGS[field('lrSchedulerType').value as LrSchedulerType] ?? {};
  for (const name of SCHEDULER_KWARG_NAMES) {
    const control = field(`lrSchedulerKwargs.${name}`);
    control.closest('label')!.hidden = !(name in accepted);
    if (control instanceof HTMLInputElement) control.placeholder = accepted[name] == null ? '' : String(accepted[name]);
  }
}

/**
 * The recipe knobs as the form holds them, by TrainConfig key: strings as typed and booleans, for
 * resolveConfig to parse and check. The schedule's arguments are those it takes that are filled in,
 * numbers, and the curves chosen, names.
 */
export function formKnobs(): Record<string, unknown> {
  const form = byId<HTMLFormElement>('knobs');
  const values: Record<string, unknown> = {};
  const kwargs: Record<string, unknown> = {};
  for (const control of form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input[name], select[name]')) {
    if (control.name === 'gpuMemory') continue;
    const value = control instanceof HTMLInputElement && control.type === 'checkbox' ? control.checked : control.value;
    if (!control.name.startsWith('lrSchedulerKwargs.')) values[control.name] = value;
    else if (!control.closest('label')!.hidden && value !== '') kwargs[control.name.slice('lrSchedulerKwargs.'.length)] = control instanceof HTMLSelectElement ? value : Number(value);
  }
  values['lrSchedulerKwargs'] = kwargs;
  return values;
}

/** The recipe knobs of the form, parsed and checked. @throws ConfigError naming the bad field's flag */
export function knobs(): Knobs {
  return knobsOf(recipe(formKnobs()));
}

/** The GPU memory the plan may use, in bytes (WebGPU does not report it; the form says). */
export function gpuMemory(): number {
  return Number(field('gpuMemory').value) * 2 ** 30;
}

/** Puts a run's knobs back into the form (resuming a stored run). */
export function setKnobs(k: Knobs): void {
  for (const [name, value] of Object.entries(k)) {
    if (name === 'lrSchedulerKwargs') continue;
    const control = field(name);
    if (typeof value === 'boolean') (control as HTMLInputElement).checked = value;
    else control.value = String(value);
  }
  for (const name of SCHEDULER_KWARG_NAMES) field(`lrSchedulerKwargs.${name}`).value = String(k.lrSchedulerKwargs[name] ?? SCHEDULER_KWARG_CURVES.get(name) ?? '');
  showSchedulerKwargs();
}

/** A message for a refused knob, naming the form's field before the trainer's flag. */
function knobProblem(err: unknown): string {
  if (!(err instanceof ConfigError)) return messageOf(err);
  const option = CONFIG_OPTIONS.find((o) => o.flag === err.flag);
  const control = option && byId<HTMLFormElement>('knobs').querySelector(`[name="${option.key}"]`);
  const label = control?.closest('label')?.firstChild?.textContent?.trim();
  return label ? `${label}: ${err.message}` : err.message;
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
    const p = planTraining(state.base, state.source, recipe(formKnobs()), gpuMemory());
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
    const kwargs = Object.entries(s.lrSchedulerKwargs).map(([name, value]) => `${name} ${value}`).join(', ');
    line('Schedule', `${s.lrSchedulerType}${kwargs ? ` (${kwargs})` : ''} from ${c.learningRate}; loss averaged per ${c.lossNormalization === 'tokens' ? 'answer token of the step' : 'micro-batch'}`);
    line('Memory', p.plan.memory);
    if (p.refusal) line('Does not fit:', p.refusal);
  } catch (err) {
    plan.classList.add('bad');
    say(plan, knobProblem(err));
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
