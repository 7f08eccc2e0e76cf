// Chat templates render in a sandbox as transformers' (Jinja2's ImmutableSandboxedEnvironment): range() is
// bounded at Jinja2's MAX_RANGE, and beyond Jinja2, the steps, the nesting and the text a rendering makes are
// bounded, so a hostile or broken template fails with a TemplateError naming its file instead of hanging the
// process or exhausting its memory, while real templates (Llama-2's, Llama-3's, Mistral's, ChatML), ordinary
// uses of range, and keys named "range", render as before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TemplateError, chatTemplateFromFiles, renderChatTemplate } from '@huatuo/sft';
import { LLAMA2_CHAT_TEMPLATE } from './chat-folders.js';
import { CHATML_TEMPLATE } from '../llama/qwen2-tokenizer-files.js';

const messages = [{ role: 'user', content: 'hi' }];
const render = (source: string) => renderChatTemplate(chatTemplateFromFiles({ jinjaFile: { path: 't.jinja', text: source } }, 'model'), messages);

test('range() larger than Jinja2 sandbox MAX_RANGE (100000) is refused as transformers refuses it, naming the template', () => {
  // The smallest case first: before the bound, the larger ones would exhaust memory.
  for (const source of ['{{ range(100001)|length }}', '{% for i in range(1000000000) %}{% endfor %}x', '{% set r = range %}{{ r(0, 1000000000, 2)|length }}']) {
    assert.throws(() => render(source), (e: unknown) => e instanceof TemplateError && /^t\.jinja: .*Range too big\. The sandbox blocks ranges larger than MAX_RANGE \(100000\)/.test(e.message), source);
  }
});

test('range() within the bound behaves as Python range: one, two or three arguments, negative steps, the bound itself', () => {
  assert.equal(render('{{ range(4)|join(",") }}'), '0,1,2,3');
  assert.equal(render('{{ range(2, 5)|join(",") }}'), '2,3,4');
  assert.equal(render('{{ range(10, 0, -3)|join(",") }}'), '10,7,4,1');
  assert.equal(render('{{ range(5, 2)|length }}'), '0');
  assert.equal(render('{{ range(100000)|length }}'), '100000');
  assert.equal(render('{% for m in messages %}{% for i in range(loop.index) %}{{ m.content }}{% endfor %}{% endfor %}'), 'hi');
  assert.throws(() => render('{{ range(0, 3, 0)|length }}'), (e: unknown) => e instanceof TemplateError && /must not be zero/.test(e.message));
});

test('a dict key, attribute or keyword argument named "range" is not taken for the function', () => {
  assert.equal(render('{% set d = {"range": 5} %}{{ d.range }},{{ d["range"] }}'), '5,5');
  assert.equal(render('{% set ns = namespace(range=7) %}{{ ns.range }}'), '7');
});

// meta-llama/Meta-Llama-3-8B-Instruct's chat_template.
const LLAMA3 =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
// mistralai/Mistral-7B-Instruct-v0.1's chat_template.
const MISTRAL =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

/** A template as a model folder's tokenizer_config.json holds it, with LLaMA's special tokens. */
const fromConfig = (template: string) => chatTemplateFromFiles({ tokenizerConfigJson: JSON.stringify({ chat_template: template, bos_token: '<s>', eos_token: '</s>' }) }, 'model');

/** What each real template writes for a conversation, as transformers' apply_chat_template gives it. */
const REAL: [string, string, (m: { role: string; content: string }[]) => string][] = [
  ['Llama-2-chat', LLAMA2_CHAT_TEMPLATE, (m) => m.map((x, i) => (i % 2 === 0 ? `<s>[INST] ${x.content.trim()} [/INST]` : ` ${x.content.trim()} </s>`)).join('')],
  ['Llama-3', LLAMA3, (m) => `<s>${m.map((x) => `<|start_header_id|>${x.role}<|end_header_id|>\n\n${x.content.trim()}<|eot_id|>`).join('')}<|start_header_id|>assistant<|end_header_id|>\n\n`],
  ['Mistral', MISTRAL, (m) => `<s>${m.map((x, i) => (i % 2 === 0 ? `[INST] ${x.content} [/INST]` : `${x.content}</s>`)).join('')}`],
  ['ChatML (Qwen2)', CHATML_TEMPLATE, (m) => `<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n${m.map((x) => `<|im_start|>${x.role}\n${x.content}<|im_end|>\n`).join('')}<|im_start|>assistant\n`],
];

test('a chat_template that is neither a string nor named templates is refused naming tokenizer_config.json, however deeply it nests', () => {
  const refused = (json: string, fragment: string) =>
    assert.throws(
      () => chatTemplateFromFiles({ tokenizerConfigJson: json }, 'model'),
      (e: unknown) => e instanceof TemplateError && e.message.startsWith('model/tokenizer_config.json: chat_template should be a Jinja string or a list of {"name", "template"}, got ') && e.message.includes(fragment),
    );
  refused('{"chat_template": 7}', 'got 7;');
  // JSON.parse reads it; JSON.stringify's stack overflowed writing it back, a RangeError naming no file.
  refused(`{"chat_template": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`, 'got a list of 1 items;');
});

// The bounds grew with every variable, the model's own special tokens among them, which come from the same
// tokenizer_config.json as the template: 20000 additional_special_tokens (200 KB) gave a looping template 21 million
// steps, 4 s of the event loop for every chat, and a megabyte of them minutes.
test("a model's special tokens do not raise the bounds on its template's work; the conversation does", () => {
  const loop = '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}';
  const bound = (tokens: number, conversation = messages) => {
    const config = { chat_template: loop, additional_special_tokens: Array.from({ length: tokens }, (_, i) => `<t${i}>`) };
    const t = chatTemplateFromFiles({ tokenizerConfigJson: JSON.stringify(config) }, 'model');
    try {
      renderChatTemplate(t, conversation);
    } catch (e) {
      const steps = /took more than (\d+) steps/.exec((e as Error).message);
      if (steps) return Number(steps[1]);
      throw e;
    }
    throw new Error('the loop rendered');
  };
  assert.equal(bound(20_000), bound(0));
  assert.ok(bound(0, Array.from({ length: 100 }, () => ({ role: 'user', content: 'hi' }))) > bound(0) + 100_000);
});

test('real chat templates render as transformers renders them, a short conversation and one of 4000 messages of 1000 characters alike', () => {
  const short = [{ role: 'user', content: 'What is a fever?' }, { role: 'assistant', content: 'A raised body temperature.' }, { role: 'user', content: 'And a cough?' }];
  const long = Array.from({ length: 4000 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: `${i} ${'word '.repeat(200)}`.slice(0, 1000) }));
  for (const [name, template, expected] of REAL) {
    assert.equal(renderChatTemplate(fromConfig(template), short), expected(short), name);
    assert.equal(renderChatTemplate(fromConfig(template), long), expected(long), `${name}, 4000 messages`);
  }
  assert.equal(
    renderChatTemplate(fromConfig(LLAMA2_CHAT_TEMPLATE), [{ role: 'system', content: 'Be brief.' }, ...short]),
    '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is a fever? [/INST] A raised body temperature. </s><s>[INST] And a cough? [/INST]',
  );
});

test("strftime_now formats the date as Python's strftime does in the C locale", () => {
  const C = { month: ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'], day: ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] };
  const python = (d: Date) => `${String(d.getDate()).padStart(2, '0')} ${C.month[d.getMonth()]} ${d.getFullYear()} ${C.day[d.getDay()]} ${String(d.getFullYear() % 100).padStart(2, '0')}-${String(d.getMonth() + 1).padStart(2, '0')} %`;
  const before = python(new Date());
  const got = render('{{ strftime_now("%d %b %Y %A %y-%m %%") }}');
  assert.ok(got === before || got === python(new Date()), got);
});

/** Two distinct strings of 2^19 characters, ns.s and ns.t. */
const LONG_STRINGS = "{% set ns = namespace(s='x', t='z') %}{% for i in range(19) %}{% set ns.s = ns.s ~ ns.s %}{% set ns.t = ns.t ~ ns.t %}{% endfor %}";

// Each of these would hang the process (nested loops, recursion that branches, reading a long string or searching a
// long list in every step: 100000 startswith calls on half a million characters take seven minutes) or exhaust its
// memory (doubling a string or a list) without the bounds. A hang cannot be interrupted inside the process, so they render in a child
// process killed after 60 s, which fails the test instead of hanging it.
test('templates that loop, recurse or grow text without end fail at once with a TemplateError naming the file and the bound', { timeout: 120_000 }, () => {
  const hostile: Record<string, string> = {
    nestedLoops: '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}',
    nestedOutput: '{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}',
    branchingMacro: '{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}',
    endlessRecursion: '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}',
    doubledString: "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    repeatedOutput: "{% set ns = namespace(s='x') %}{% for i in range(20) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{% for i in range(100000) %}{{ ns.s }}{% endfor %}",
    doubledList: '{% set ns = namespace(a=[1]) %}{% for i in range(64) %}{% set ns.a = ns.a + ns.a %}{% endfor %}{{ ns.a|length }}',
    stringTimesNumber: "{{ ('x' * 10**9)|length }}",
    searchedString: `${LONG_STRINGS}{% for i in range(100000) %}{% if 'y' in ns.s %}{% endif %}{% endfor %}`,
    comparedStrings: `${LONG_STRINGS}{% for i in range(100000) %}{% if ns.s == ns.t %}{% endif %}{% endfor %}`,
    startswithLoop: `${LONG_STRINGS}{% for i in range(100000) %}{% if ns.s.startswith(ns.s) %}{% endif %}{% endfor %}`,
    searchedList: '{% set ns = namespace(a=[0]) %}{% for i in range(18) %}{% set ns.a = ns.a + ns.a %}{% endfor %}{% for i in range(100000) %}{% if 2 in ns.a %}{% endif %}{% endfor %}',
  };
  const script = `
    import { chatTemplateFromFiles, renderChatTemplate } from '@huatuo/sft';
    const results = {};
    for (const [name, template] of Object.entries(${JSON.stringify(hostile)})) {
      const t = chatTemplateFromFiles({ tokenizerConfigJson: JSON.stringify({ chat_template: template }) }, 'model');
      const started = performance.now();
      try {
        results[name] = { output: renderChatTemplate(t, [{ role: 'user', content: 'hi' }]).slice(0, 100) };
      } catch (e) {
        results[name] = { error: e.name + ': ' + e.message, ms: performance.now() - started };
      }
    }
    process.stdout.write(JSON.stringify(results));`;
  const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
  const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
  const results = JSON.parse(out) as Record<string, { output?: string; error?: string; ms?: number }>;
  const bound: Record<string, RegExp> = {
    nestedLoops: /took more than \d+ steps/,
    nestedOutput: /took more than \d+ steps/,
    branchingMacro: /took more than \d+ steps/,
    endlessRecursion: /nested deeper than 1000 levels/,
    doubledString: /made a string longer than \d+ characters/,
    repeatedOutput: /made more than \d+ characters of text in all/,
    doubledList: /took more than \d+ steps/,
    stringTimesNumber: /Unknown operator "\*" between StringValue and IntegerValue/,
    searchedString: /took more than \d+ steps/,
    comparedStrings: /took more than \d+ steps/,
    startswithLoop: /took more than \d+ steps/,
    searchedList: /took more than \d+ steps/,
  };
  for (const [name, expected] of Object.entries(bound)) {
    const r = results[name]!;
    assert.ok(r.error !== undefined, `${name} rendered: ${r.output}`);
    assert.match(r.error, /^TemplateError: model\/tokenizer_config\.json: the chat template /, name);
    assert.match(r.error, expected, name);
    assert.ok(r.ms! < 5_000, `${name} took ${r.ms} ms`);
  }
  assert.match(results['nestedLoops']!.error!, /rendering 1 messages, a bound real chat templates stay far below, so this one is broken or hostile; use the model's original chat template, or give one with --template path\/to\/template\.jinja$/);
});

test('a filter, replace(), ~ or a printed list that would make a string longer than the bound is refused before it is made, naming the file', { timeout: 120_000 }, () => {
  // Each makes 80 to 400 million characters of a message of 10000 (a bound of 1208640 characters).
  const amplifying: Record<string, string> = {
    indentWidth: '{{ (messages[0].content ~ "\\n" ~ messages[0].content) | indent(400000000) }}',
    indentByString: '{{ messages[0].content | join("\\n") | indent(messages[0].content) }}',
    replaceEmpty: '{{ messages[0].content.replace("", messages[0].content) }}',
    replaceFilter: '{{ messages[0].content | replace("a", messages[0].content) }}',
    joinString: '{{ messages[0].content | join(messages[0].content) }}',
    joinList: '{% set ns = namespace(l=[messages[0].content]) %}{% for i in range(13) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | join }}',
    tojsonList: '{% set ns = namespace(l=[messages[0].content]) %}{% for i in range(13) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | tojson }}',
    tojsonIndent: '{{ messages | tojson(indent=50000000) }}',
    printedList: '{% set ns = namespace(l=[messages[0].content]) %}{% for i in range(13) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l }}',
    concatenatedList: '{% set ns = namespace(l=[messages[0].content]) %}{% for i in range(13) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ (ns.l ~ "") | length }}',
  };
  // Each in a process of its own, whose peak memory is its own.
  const script = `
    import { chatTemplateFromFiles, renderChatTemplate } from '@huatuo/sft';
    const t = chatTemplateFromFiles({ jinjaFile: { path: 'amplifying.jinja', text: process.argv[1] } }, 'model');
    const peak = process.resourceUsage().maxRSS;
    let result;
    try {
      result = { output: renderChatTemplate(t, [{ role: 'user', content: 'a'.repeat(10000) }]).length };
    } catch (e) {
      result = { error: e.name + ': ' + e.message };
    }
    result.peakGrowthMB = (process.resourceUsage().maxRSS - peak) / 1024;
    process.stdout.write(JSON.stringify(result));`;
  const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
  const results = Object.fromEntries(
    Object.entries(amplifying).map(([name, template]) => {
      const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script, template], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
      return [name, JSON.parse(out) as { output?: number; error?: string; peakGrowthMB: number }];
    }),
  );
  const wrong = Object.keys(amplifying).flatMap((name) => {
    const r = results[name]!;
    const refused = /^TemplateError: amplifying\.jinja: the chat template would make a string of (more than )?\d+ characters with [\w ~]+, longer than 1208640 characters rendering 1 messages/.test(r.error ?? '');
    // Made before it was refused, the string took 80 to 400 MB.
    return refused && r.peakGrowthMB < 40 ? [] : [`${name}: ${r.error ?? `rendered ${r.output} characters`}; the peak memory grew by ${r.peakGrowthMB} MB`];
  });
  assert.deepEqual(wrong, []);
});
