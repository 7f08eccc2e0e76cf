import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TemplateError, LITERATURE_TEMPLATE, MED_TEMPLATE, generatePrompt, getResponse, parseTemplate, loadTemplate, resolveTemplate } from '@huatuo/sft';
import { pythonFormat, pythonStrip } from '@huatuo/sft/internal';

const templateFile = (name: string) => fileURLToPath(new URL(`../../../shared/data/huatuo/templates/${name}.json`, import.meta.url));

test("the built-in templates equal HuaTuo's template files field for field", () => {
  for (const builtin of [MED_TEMPLATE, LITERATURE_TEMPLATE]) {
    const json = JSON.parse(readFileSync(templateFile(builtin.name), 'utf8')) as Record<string, string>;
    assert.equal(builtin.description, json['description']);
    assert.equal(builtin.promptNoInput, json['prompt_no_input']);
    assert.equal(builtin.promptInput, json['prompt_input'] ?? null);
    assert.equal(builtin.responseSplit, json['response_split']);
    assert.deepEqual({ ...loadTemplate(templateFile(builtin.name)), name: builtin.name }, builtin);
  }
});

test('a question fills med_template, and the answer follows the prompt directly', () => {
  const prompt = generatePrompt(MED_TEMPLATE, '感冒发烧怎么办？');
  assert.equal(prompt, '下面是一个问题，运用医学知识来正确回答提问.\n### 问题:\n感冒发烧怎么办？\n### 回答:\n');
  assert.equal(generatePrompt(MED_TEMPLATE, '感冒发烧怎么办？', '', '多休息。'), `${prompt}多休息。`);
  assert.equal(generatePrompt(MED_TEMPLATE, '感冒发烧怎么办？', null, ''), prompt);
});

test('a non-empty input selects prompt_input, which in med_template has no {input} and so drops it, as str.format does', () => {
  assert.equal(generatePrompt(MED_TEMPLATE, 'q', '附加信息'), MED_TEMPLATE.promptInput!.replace('{instruction}', 'q'));
  assert.throws(() => generatePrompt(LITERATURE_TEMPLATE, 'q', '附加信息'), (e: unknown) => e instanceof TemplateError && /no prompt_input/.test(e.message));
});

test('the answer is the text after the response marker, stripped, up to a repeated marker', () => {
  const generated = `${generatePrompt(MED_TEMPLATE, '头痛怎么办？')}  注意休息，必要时就医。\u3000\n`;
  assert.equal(getResponse(MED_TEMPLATE, generated), '注意休息，必要时就医。');
  assert.equal(getResponse(MED_TEMPLATE, 'x### 回答: 一 ### 回答: 二'), '一');
  assert.throws(() => getResponse(MED_TEMPLATE, '没有标记'), TemplateError);
});

test("pythonStrip strips what Python's str.strip strips", () => {
  assert.equal(pythonStrip('\u0085\u001c a b \u3000\t'), 'a b');
  assert.equal(pythonStrip('\ufeffa'), '\ufeffa');
  assert.equal(pythonStrip(' \n\u2028'), '');
  assert.equal(pythonStrip(''), '');
  assert.equal(pythonStrip('\u200b x\u200b'), '\u200b x\u200b', 'U+200B is not a space to Python');
});

test('pythonStrip on a generated answer with a long run of spaces inside returns at once, the run kept', { timeout: 60_000 }, () => {
  // A regular expression for the trailing spaces retried from each space of the run: quadratic, minutes
  // here. A blocked process cannot be interrupted, so the strip runs in a child killed after 30 s.
  const script = `
    import { pythonStrip } from '@huatuo/sft/internal';
    const text = 'a' + ' '.repeat(400000) + 'x \\n';
    process.stdout.write(JSON.stringify(pythonStrip(text) === text.slice(0, -2)));`;
  const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
  const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
  assert.equal(out, 'true');
});

test('pythonFormat fills named fields and unescapes doubled braces', () => {
  assert.equal(pythonFormat('{{x}} {instruction}!', { instruction: 'q' }), '{x} q!');
  assert.throws(() => pythonFormat('{other}', { instruction: 'q' }), TemplateError);
  assert.throws(() => pythonFormat('a } b', {}), /single "}"/);
});

test('templates resolve by built-in name or by path, and unknown names list the built-ins', () => {
  assert.equal(resolveTemplate('med_template'), MED_TEMPLATE);
  assert.equal(resolveTemplate(templateFile('bloom_deploy')).responseSplit, '### 回答：');
  assert.throws(() => resolveTemplate('alpaca'), /built-in: med_template, literature_template/);
  assert.throws(() => resolveTemplate('/nonexistent/t.json'), /cannot read the template/);
});

test('malformed templates are refused naming the field', () => {
  const ok = { prompt_no_input: 'Q: {instruction}\nA:', response_split: 'A:' };
  assert.equal(parseTemplate(ok, 't.json').promptInput, null);
  assert.throws(() => parseTemplate([], 't.json'), /expected a JSON object/);
  assert.throws(() => parseTemplate({ response_split: 'A:' }, 't.json'), /"prompt_no_input" must be a string/);
  assert.throws(() => parseTemplate({ ...ok, response_split: 'B:' }, 't.json'), /does not contain response_split/);
  assert.throws(() => parseTemplate({ ...ok, prompt_no_input: 'Q: A:' }, 't.json'), /no \{instruction\} placeholder/);
  assert.throws(() => parseTemplate({ ...ok, prompt_no_input: '{question} A:' }, 't.json'), /unknown placeholder \{question\}/);
  // JSON.parse reads a list 100000 deep; writing it back with JSON.stringify overflowed the stack (a bare RangeError).
  const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
  assert.throws(() => parseTemplate({ ...ok, prompt_no_input: deep }, 't.json'), (e: unknown) => e instanceof TemplateError && /^t\.json: "prompt_no_input" must be a string, got an array$/.test(e.message));
  assert.throws(() => parseTemplate({ ...ok, response_split: 7 }, 't.json'), /^TemplateError: t\.json: "response_split" must be a string, got number 7$/);
});
