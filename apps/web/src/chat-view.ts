// The chat card: one question answered by the base model, then by the adapted one, streamed, with HuaTuo's prompt or,
// where the model's folder has one, its own chat template.

import { answer, type ChatSettings, type PromptChoice } from './chat.js';
import { byId, messageOf } from './dom.js';
import { refresh, state } from './state.js';

/** The prompt chosen above the question: the model's chat template only where the choice is offered. */
function promptChoice(): PromptChoice {
  const checked = document.querySelector<HTMLInputElement>('input[name=prompt]:checked');
  return !byId('prompt-choice').hidden && checked?.value === 'chat' ? 'chat' : 'huatuo';
}

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
  const choice = promptChoice();
  state.busy = 'chatting';
  refresh();
  const hasAdapter = state.base.model.loraConfig !== null;
  const panes = [byId('answer-base'), byId('answer-adapted')] as const;
  for (const p of panes) {
    p.textContent = '';
    p.classList.remove('bad');
    for (const key of ['answer', 'promptTokens', 'tokens']) delete p.dataset[key];
  }
  try {
    for (const [i, pane] of panes.entries()) {
      if (i === 1 && !hasAdapter) {
        pane.textContent = 'No adapter yet: train one or load a PEFT adapter.';
        continue;
      }
      pane.classList.add('streaming');
      try {
        const r = await answer(state.base, question, settings, i === 1, choice, (t) => (pane.textContent = t));
        pane.textContent = r.text || '(empty answer)';
        const meta = document.createElement('span');
        meta.className = 'meta';
        meta.textContent = `${r.tokens.length} tokens · ${r.tokensPerSec.toFixed(1)} tok/s · ${r.finish === 'eos' ? 'ended' : 'hit the token limit'}`;
        pane.append(meta);
        pane.dataset.answer = r.text;
        pane.dataset.promptTokens = JSON.stringify(r.promptTokens);
        pane.dataset.tokens = JSON.stringify(r.tokens);
      } catch (err) {
        pane.textContent = messageOf(err);
        pane.classList.add('bad');
      } finally {
        pane.classList.remove('streaming');
      }
    }
  } finally {
    state.busy = '';
    refresh();
  }
}
