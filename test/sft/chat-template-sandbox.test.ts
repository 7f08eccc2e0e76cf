// Chat templates render in a sandbox as transformers' (Jinja2's ImmutableSandboxedEnvironment): range() is
// bounded at Jinja2's MAX_RANGE, so a hostile or broken template fails with a TemplateError instead of
// exhausting memory, while ordinary uses of range, and keys named "range", keep working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TemplateError, chatTemplateFromFiles, renderChatTemplate } from '@huatuo/sft';

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
