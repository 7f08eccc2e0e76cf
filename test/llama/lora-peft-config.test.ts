// adapter_config.json read as PEFT reads it: which projections target_modules (names, a regular expression,
// all-linear), exclude_modules and layers_to_transform select, each module's rank and alpha from rank_pattern
// and alpha_pattern, rsLoRA's scaling, the fields refused by name, and writing the config back.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loraModules, parsePeftConfig, resolveLoraConfig, toPeftConfigJson } from '@huatuo/llama';
import { peftFieldNames } from '@huatuo/llama/internal';

const FILE = 'adapter/adapter_config.json';
const base = { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0, bias: 'none', fan_in_fan_out: false, task_type: 'CAUSAL_LM' };

/** The modules a config selects on a 2-layer LLaMA, as `name r alpha scaling`. */
function selected(fields: Record<string, unknown>, layers = 2): string[] {
  const cfg = parsePeftConfig({ ...base, ...fields }, FILE);
  return loraModules(cfg, layers, FILE, peftFieldNames).map((m) => `${m.name} ${m.r} ${m.alpha} ${m.scaling}`);
}
const names = (fields: Record<string, unknown>, layers = 2) => selected(fields, layers).map((s) => s.split(' ')[0]);

function refusal(...words: string[]) {
  return (e: unknown) => {
    assert.ok(e instanceof Error && e.name === 'AdapterError', String(e));
    for (const w of [FILE, ...words]) assert.ok(e.message.includes(w), `"${e.message}" should mention ${w}`);
    return true;
  };
}

const L = (i: number, m: string) => `model.layers.${i}.${['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn'}.${m}`;

describe('target_modules as PEFT matches it', () => {
  it('a list entry matches a module whose full name equals it or ends with "." and it', () => {
    assert.deepEqual(names({ target_modules: ['q_proj', 'v_proj'] }), [L(0, 'q_proj'), L(0, 'v_proj'), L(1, 'q_proj'), L(1, 'v_proj')]);
    assert.deepEqual(names({ target_modules: ['self_attn.k_proj', 'model.layers.1.mlp.down_proj'] }), [L(0, 'k_proj'), L(1, 'k_proj'), L(1, 'down_proj')]);
  });

  it('a string is a regular expression matched against the whole full name, not a module name', () => {
    assert.deepEqual(names({ target_modules: '.*\\.(q|v)_proj' }), [L(0, 'q_proj'), L(0, 'v_proj'), L(1, 'q_proj'), L(1, 'v_proj')]);
    assert.deepEqual(names({ target_modules: 'model\\.layers\\.1\\.mlp\\.(up|down)_proj' }), [L(1, 'up_proj'), L(1, 'down_proj')]);
    assert.deepEqual(names({ target_modules: '.*layers\\.0.*_proj' }), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'].map((m) => L(0, m)));
    // Python's named groups run too.
    assert.deepEqual(names({ target_modules: '.*\\.0\\.self_attn\\.(?P<which>q)_proj' }), [L(0, 'q_proj')]);
    // "q_proj" as a string full-matches no module name: PEFT adapts nothing and fails; so does this.
    assert.throws(() => names({ target_modules: 'q_proj' }), refusal('target_modules', '/q_proj/', 'selects no projection'));
  });

  it('"all-linear" is every projection of every layer, never lm_head', () => {
    const all = names({ target_modules: 'all-linear' });
    assert.equal(all.length, 14);
    assert.ok(!all.includes('lm_head'));
    assert.deepEqual(names({ target_modules: 'ALL-LINEAR' }), all);
  });

  it('exclude_modules removes modules, as a list or a regular expression', () => {
    assert.deepEqual(names({ target_modules: ['q_proj', 'v_proj'], exclude_modules: ['model.layers.0.self_attn.v_proj'] }), [L(0, 'q_proj'), L(1, 'q_proj'), L(1, 'v_proj')]);
    assert.deepEqual(names({ target_modules: 'all-linear', exclude_modules: '.*(self_attn|down_proj).*' }), [L(0, 'gate_proj'), L(0, 'up_proj'), L(1, 'gate_proj'), L(1, 'up_proj')]);
    assert.deepEqual(names({ target_modules: '.*_proj|lm_head', exclude_modules: ['lm_head', 'mlp.gate_proj', 'up_proj', 'down_proj', 'o_proj', 'k_proj'] }), [L(0, 'q_proj'), L(0, 'v_proj'), L(1, 'q_proj'), L(1, 'v_proj')]);
  });

  it('refuses targets that select lm_head, the embeddings or a module that is not linear, and entries that name no projection', () => {
    assert.throws(() => names({ target_modules: ['q_proj', 'lm_head'] }), refusal('target_modules', 'lm_head', 'not supported'));
    assert.throws(() => names({ target_modules: ['embed_tokens'] }), refusal('model.embed_tokens', 'not supported'));
    assert.throws(() => names({ target_modules: '.*' }), refusal('selects model:', 'not a linear layer'));
    assert.throws(() => names({ target_modules: ['mlp'] }), refusal('model.layers.0.mlp', 'not a linear layer'));
    assert.throws(() => names({ target_modules: ['q_proj', 'q_prj'] }), refusal('target_modules entry "q_prj"', 'names no projection'));
    assert.throws(() => names({ target_modules: ['model.layers.5.self_attn.q_proj'] }), refusal('"model.layers.5.self_attn.q_proj"', '2-layer'));
    assert.throws(() => names({ target_modules: '(' }), refusal('target_modules', '"("', 'regular expression'));
  });
});

describe("PEFT's choices with Python's re (test/fixtures/lora/peft-targets.json, scripts/fixtures/make-lora-targets-fixture.py)", () => {
  const fixture = JSON.parse(readFileSync(new URL('../fixtures/lora/peft-targets.json', import.meta.url), 'utf8')) as {
    layers: number;
    cases: { config: Record<string, unknown>; adapted: [string, number, number][] | 'error' }[];
  };
  for (const { config, adapted } of fixture.cases) {
    const fields = Object.fromEntries(Object.entries(config).filter(([k]) => k !== 'r' && k !== 'lora_alpha'));
    it(`${JSON.stringify(fields)}: ${adapted === 'error' ? 'refused' : `${adapted.length} modules`}`, () => {
      const got = () => loraModules(parsePeftConfig({ ...base, ...config }, FILE), fixture.layers, FILE, peftFieldNames).map((m) => [m.name, m.r, m.alpha]);
      if (adapted === 'error') assert.throws(got, (e: unknown) => e instanceof Error && e.name === 'AdapterError' && e.message.includes(FILE));
      else assert.deepEqual(got(), adapted);
    });
  }
});

describe('regular expressions from an untrusted adapter_config.json', () => {
  // (.*)*x backtracks exponentially in a JavaScript RegExp: on a 40-letter name such as
  // model.layers.31.post_attention_layernorm for hours. A RegExp cannot be interrupted, so the configs are
  // read in a child process killed after 30 s, which fails the test instead of hanging it.
  it('patterns that backtrack catastrophically finish at once in every field that takes one, on 32 layers', { timeout: 60_000 }, () => {
    const bad = '(.*)*x';
    const cases = [
      { target_modules: bad },
      { target_modules: ['q_proj'], exclude_modules: `${bad}|.*\\.[1-9]\\d*\\..*` },
      { target_modules: ['q_proj'], exclude_modules: '.*\\.[1-9]\\d*\\..*', rank_pattern: { [bad]: 2 }, alpha_pattern: { [`(\\w+\\.?)+${bad}`]: 3 } },
      { target_modules: ['q_proj'], layers_to_transform: [1], layers_pattern: [bad, 'layers'] },
    ];
    const script = `
      import { loraModules, parsePeftConfig } from '@huatuo/llama';
      import { peftFieldNames } from '@huatuo/llama/internal';
      const results = ${JSON.stringify(cases)}.map((fields) => {
        try {
          return loraModules(parsePeftConfig({ ...${JSON.stringify(base)}, ...fields }, 'a.json'), 32, 'a.json', peftFieldNames).map((m) => m.name + ' ' + m.r + ' ' + m.alpha);
        } catch (e) {
          return e.message;
        }
      });
      process.stdout.write(JSON.stringify(results));`;
    const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
    const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
    const [none, excluded, patterned, layers] = JSON.parse(out) as [string, string[], string[], string[]];
    assert.match(none, /^a\.json: target_modules \/\(\.\*\)\*x\/ selects no projection/);
    assert.deepEqual(excluded, [`${L(0, 'q_proj')} 4 8`]);
    assert.deepEqual(patterned, [`${L(0, 'q_proj')} 4 8`]);
    assert.deepEqual(layers, [`${L(1, 'q_proj')} 4 8`]);
  });

  it('refuses look-aheads and backreferences, which need backtracking, naming the file, the field and the pattern', () => {
    assert.throws(() => names({ target_modules: '(?!.*k_proj).*_proj' }), refusal('target_modules "(?!.*k_proj).*_proj"', 'look-ahead', 'exclude_modules'));
    assert.throws(() => names({ target_modules: ['q_proj'], exclude_modules: '.*(?=k_proj)' }), refusal('exclude_modules', 'look-ahead'));
    assert.throws(() => names({ target_modules: '.*(q)_pro\\1' }), refusal('target_modules', 'backreference'));
    assert.throws(() => names({ target_modules: '.*(?P<x>q)_(?P=x)' }), refusal('target_modules', 'backreference'));
    assert.throws(() => parsePeftConfig({ ...base, target_modules: ['q_proj'], rank_pattern: { '(?>q)_proj': 2 } }, FILE), refusal('rank_pattern key', 'atomic group'));
    // A look-behind runs (in linear time), as in the fixture's exclude_modules.
    assert.deepEqual(names({ target_modules: '.*(?<!k|v|o)_proj', exclude_modules: '.*mlp.*' }, 1), [L(0, 'q_proj')]);
  });
});

describe('layers_to_transform and layers_pattern', () => {
  it('adapts only the listed layers (a list or one index)', () => {
    assert.deepEqual(names({ target_modules: ['q_proj', 'v_proj'], layers_to_transform: [1] }), [L(1, 'q_proj'), L(1, 'v_proj')]);
    assert.deepEqual(names({ target_modules: ['q_proj'], layers_to_transform: 0 }), [L(0, 'q_proj')]);
    assert.deepEqual(names({ target_modules: ['down_proj'], layers_to_transform: [0, 2], layers_pattern: 'layers' }, 3), [L(0, 'down_proj'), L(2, 'down_proj')]);
    assert.deepEqual(names({ target_modules: ['q_proj'], layers_to_transform: [] }), [L(0, 'q_proj'), L(1, 'q_proj')]);
  });

  it('leaves an entry equal to a full module name out of the layer filter, as PEFT does', () => {
    assert.deepEqual(names({ target_modules: ['model.layers.0.self_attn.q_proj', 'v_proj'], layers_to_transform: [1] }), [L(0, 'q_proj'), L(1, 'v_proj')]);
  });

  it('a layers_pattern that names no module list selects nothing, and is refused', () => {
    assert.throws(() => names({ target_modules: ['q_proj'], layers_to_transform: [0], layers_pattern: ['h'] }), refusal('selects no projection'));
  });

  it('refuses layers_to_transform with a string target_modules, and layers_pattern alone, as PEFT does', () => {
    assert.throws(() => parsePeftConfig({ ...base, target_modules: '.*q_proj', layers_to_transform: [0] }, FILE), refusal('layers_to_transform', 'target_modules'));
    assert.throws(() => parsePeftConfig({ ...base, target_modules: ['q_proj'], layers_pattern: 'layers' }, FILE), refusal('layers_pattern', 'layers_to_transform'));
    assert.throws(() => parsePeftConfig({ ...base, target_modules: ['q_proj'], layers_to_transform: [-1] }, FILE), refusal('layers_to_transform'));
  });
});

describe('rank_pattern, alpha_pattern and use_rslora', () => {
  it('gives each module the value of the first key matching the end of its name, and alpha / r or alpha / sqrt(r)', () => {
    const fields = { target_modules: ['q_proj', 'v_proj'], r: 4, lora_alpha: 8, rank_pattern: { 'layers\\.1\\..*': 9, q_proj: 2 }, alpha_pattern: { 'model.layers.0.self_attn.v_proj': 3 } };
    assert.deepEqual(selected(fields), [`${L(0, 'q_proj')} 2 8 4`, `${L(0, 'v_proj')} 4 3 0.75`, `${L(1, 'q_proj')} 9 8 ${8 / 9}`, `${L(1, 'v_proj')} 9 8 ${8 / 9}`]);
    assert.deepEqual(selected({ ...fields, use_rslora: true }), [`${L(0, 'q_proj')} 2 8 ${8 / Math.sqrt(2)}`, `${L(0, 'v_proj')} 4 3 1.5`, `${L(1, 'q_proj')} 9 8 ${8 / 3}`, `${L(1, 'v_proj')} 9 8 ${8 / 3}`]);
    // A key must match a whole name component: "proj" is not the end of "q_proj" after a ".".
    assert.deepEqual(selected({ target_modules: ['q_proj'], rank_pattern: { proj: 7 } }, 1), [`${L(0, 'q_proj')} 4 8 2`]);
  });

  it("reads Python's \\A and \\Z anchors as anchors (JavaScript would take them for the letters A and Z), and \\\\Z as a backslash and Z", () => {
    assert.deepEqual(selected({ target_modules: ['q_proj', 'v_proj'], rank_pattern: { 'q_proj\\Z': 2 } }, 1), [`${L(0, 'q_proj')} 2 8 4`, `${L(0, 'v_proj')} 4 8 2`]);
    assert.deepEqual(names({ target_modules: '\\Amodel\\.layers\\.0\\.self_attn\\.v_proj\\Z' }), [L(0, 'v_proj')]);
    assert.throws(() => selected({ target_modules: 'model\\.layers\\.0\\.self_attn\\.v_proj\\\\Z' }), refusal('selects no projection'));
  });

  it('refuses bad pattern values and use_rslora that is not a boolean', () => {
    assert.throws(() => parsePeftConfig({ ...base, rank_pattern: { q_proj: 0 } }, FILE), refusal('rank_pattern', '"q_proj"'));
    assert.throws(() => parsePeftConfig({ ...base, alpha_pattern: { q_proj: 'x' } }, FILE), refusal('alpha_pattern'));
    assert.throws(() => parsePeftConfig({ ...base, use_rslora: 'yes' }, FILE), refusal('use_rslora'));
    assert.throws(() => parsePeftConfig({ ...base, use_dora: 'yes' }, FILE), refusal('use_dora'));
  });
});

describe('fields that change the computation but are not implemented', () => {
  const cases: [string, unknown][] = [
    ['lora_bias', true],
    ['fan_in_fan_out', true],
    ['megatron_config', { tensor_model_parallel_size: 2 }],
    ['layer_replication', [[0, 2], [1, 2]]],
    ['trainable_token_indices', [5, 6]],
    ['target_parameters', ['mlp.experts.down_proj']],
    ['alora_invocation_tokens', [1, 2]],
    ['use_qalora', true],
    ['arrow_config', { top_k: 2 }],
    // Initializations that change the base weights (PEFT redoes them on load, so the adapter is relative to the changed base).
    ['init_lora_weights', 'pissa'],
    ['init_lora_weights', 'pissa_niter_4'],
    ['init_lora_weights', 'olora'],
    ['init_lora_weights', 'loftq'],
    ['init_lora_weights', 'corda'],
  ];
  for (const [field, value] of cases) {
    it(`refuses ${field}: ${JSON.stringify(value)}, naming the file and the field`, () => {
      assert.throws(() => parsePeftConfig({ ...base, target_modules: ['q_proj'], [field]: value }, FILE), refusal(`"${field}"`));
    });
  }

  it('accepts those fields at their defaults, and fields that do not change the computation', () => {
    const cfg = parsePeftConfig(
      {
        ...base, target_modules: ['q_proj'], use_dora: false, lora_bias: false, megatron_config: null, megatron_core: 'megatron.core', layer_replication: null, trainable_token_indices: null,
        target_parameters: null, alora_invocation_tokens: null, use_qalora: false, qalora_group_size: 16, arrow_config: null, exclude_modules: null, rank_pattern: {}, alpha_pattern: {},
        layers_to_transform: null, layers_pattern: null, init_lora_weights: 'gaussian', loftq_config: {}, eva_config: null, corda_config: null, runtime_config: { ephemeral_gpu_offload: false },
        revision: null, inference_mode: false, auto_mapping: null, modules_to_save: null, peft_version: '0.17.0', use_rslora: false,
      },
      FILE,
    );
    assert.deepEqual(cfg, resolveLoraConfig({ r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj'] }));
    for (const init of [true, false, 'gaussian', 'eva']) parsePeftConfig({ ...base, target_modules: ['q_proj'], init_lora_weights: init }, FILE);
  });
});

describe('writing adapter_config.json back', () => {
  it('keeps every field through toPeftConfigJson and parsePeftConfig', () => {
    const configs = [
      resolveLoraConfig({ r: 4, alpha: 16, targetModules: '.*\\.(q|v)_proj', useRslora: true, rankPattern: { q_proj: 2 }, alphaPattern: { 'layers\\.1\\..*': 3 }, excludeModules: '.*\\.0\\.self_attn\\.v_proj' }),
      resolveLoraConfig({ r: 2, targetModules: ['q_proj', 'down_proj'], layersToTransform: [1], layersPattern: ['layers'], excludeModules: ['model.layers.1.mlp.down_proj'] }),
      resolveLoraConfig({ targetModules: 'all-linear' }),
      resolveLoraConfig({ r: 8, targetModules: ['q_proj', 'v_proj'], useDora: true, useRslora: true }),
      resolveLoraConfig({ r: 8, targetModules: ['q_proj', 'v_proj'], modulesToSave: ['embed_tokens', 'lm_head'] }),
    ];
    for (const cfg of configs) assert.deepEqual(parsePeftConfig(JSON.parse(JSON.stringify(toPeftConfigJson(cfg))), FILE), cfg);
  });

  it('writes a plain adapter without the fields older PEFT versions do not know', () => {
    const json = toPeftConfigJson(resolveLoraConfig({ r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] }), 'base');
    for (const k of ['use_rslora', 'use_dora', 'rank_pattern', 'alpha_pattern', 'layers_to_transform', 'layers_pattern', 'exclude_modules']) assert.ok(!(k in json), k);
    assert.equal(toPeftConfigJson(resolveLoraConfig({ useRslora: true }))['use_rslora'], true);
    assert.equal(toPeftConfigJson(resolveLoraConfig({ useDora: true }))['use_dora'], true);
    assert.equal(json['modules_to_save'], null);
  });

  it('reads modules_to_save as PEFT does: a list of names, an empty list as none; anything else refused by name', () => {
    assert.deepEqual(parsePeftConfig({ ...base, target_modules: ['q_proj'], modules_to_save: ['embed_tokens', 'lm_head'] }, FILE).modulesToSave, ['embed_tokens', 'lm_head']);
    assert.equal(parsePeftConfig({ ...base, target_modules: ['q_proj'], modules_to_save: [] }, FILE).modulesToSave, null);
    assert.throws(() => parsePeftConfig({ ...base, target_modules: ['q_proj'], modules_to_save: 'lm_head' }, FILE), refusal('modules_to_save', 'list of module names'));
    assert.throws(() => parsePeftConfig({ ...base, target_modules: ['q_proj'], modules_to_save: [''] }, FILE), refusal('modules_to_save'));
  });
});

describe('a field nested too deeply to write back', () => {
  // JSON.parse reads it; JSON.stringify's stack overflows on it (a bare RangeError naming neither file nor field).
  const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
  const fields: [string, Record<string, unknown>][] = [
    ...['peft_type', 'bias', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'use_rslora', 'use_dora', 'modules_to_save', 'layers_to_transform', 'layers_pattern', 'rank_pattern'].map(
      (key) => [key, { [key]: deep }] as [string, Record<string, unknown>],
    ),
    ['alpha_pattern', { alpha_pattern: { q_proj: deep } }],
  ];
  for (const [key, given] of fields) {
    it(`${key} is refused naming the file and the field`, () => {
      assert.throws(() => parsePeftConfig({ ...base, ...given }, FILE), refusal(key, 'an array nested too deeply to show'));
    });
  }
});
