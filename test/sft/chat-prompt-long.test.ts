// A chat template's prompt ids for a very long conversation: the ids of each piece are appended without
// spreading them as call arguments, so a prompt of more ids than the call stack holds (a 128k-context model)
// reaches the length check instead of failing with a native RangeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { llamaTokenizerDir, loadTokenizer } from '@huatuo/llama';
import { chatTemplateFromFiles } from '@huatuo/sft';
import { chatTemplatePrompt } from '@huatuo/sft/internal';

test('a prompt piece of 200000 ids comes back whole', async () => {
  const tokenizer = await loadTokenizer(llamaTokenizerDir());
  const template = chatTemplateFromFiles({ jinjaFile: { path: 't.jinja', text: '{{ messages[0].content }}' } }, llamaTokenizerDir());
  const prompt = chatTemplatePrompt(template, tokenizer);
  const many = Array.from({ length: 200_000 }, (_, i) => i % 1000);
  const ids = await prompt.ids(prompt.text([{ role: 'user', content: 'long' }]), async () => many);
  assert.equal(ids.length, many.length);
  assert.deepEqual(ids.slice(-3), many.slice(-3));
});
