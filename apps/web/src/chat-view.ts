// The chat card: one question answered by the base model, then by the adapted one, streamed.

import { answer, type ChatSettings } from './chat.js';
import { byId, messageOf } from './dom.js';
import { refresh, state } from './state.js';

/** Answers the question in the chat form. */
export async function ask(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  if (!state.base) return;
  const question = byId<HTMLTextAreaElement>('question').value.trim();
  if (!question) return;
  const settings: ChatSettings = {
    doSample: (document.querySelector('input[name=decode]:checked') as HTMLInputElement).value === 'sample',
    temperature: Number(byId<HTMLInputElement>('temperature').value),
    topP: Number(byId<HTMLInputElement>('top-p').value),
    maxNewTokens: Number(byId<HTMLInputElement>('max-tokens').value),
    seed: Math.floor(Math.random() * 2 ** 31),
  };
  state.busy = 'chatting';
  refresh();
  const hasAdapter = state.base.model.loraConfig !== null;
  const panes = [byId('answer-base'), byId('answer-adapted')] as const;
  for (const p of panes) ((p.textContent = ''), delete p.dataset.answer);
  try {
    for (const [i, pane] of panes.entries()) {
      if (i === 1 && !hasAdapter) {
        pane.textContent = 'No adapter yet: train one or load a PEFT adapter.';
        continue;
      }
      pane.classList.add('streaming');
      const r = await answer(state.base, question, settings, i === 1, (t) => (pane.textContent = t));
      pane.classList.remove('streaming');
      pane.textContent = r.text || '(empty answer)';
      const meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = `${r.tokens} tokens · ${r.tokensPerSec.toFixed(1)} tok/s · ${r.finish === 'eos' ? 'ended' : 'hit the token limit'}`;
      pane.append(meta);
      pane.dataset.answer = r.text;
    }
  } catch (err) {
    for (const p of panes) p.classList.remove('streaming');
    panes[1].textContent = messageOf(err);
  } finally {
    state.busy = '';
    refresh();
  }
}
