// Worker-thread entry of TokenizerThread: loads the tokenizer of a folder and answers
// { id, text, options } messages with the text's token ids, one at a time.

import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer, type EncodeOptions, type TokenizerLoadOptions } from '@huatuo/llama';

const port = parentPort!;
try {
  const { dir, options } = workerData as { dir: string; options: TokenizerLoadOptions };
  const tokenizer = await loadTokenizer(dir, options);
  port.on('message', (m: { id: number; text: string; options: EncodeOptions }) => {
    try {
      port.postMessage({ id: m.id, ids: tokenizer.encode(m.text, m.options) });
    } catch (e) {
      port.postMessage({ id: m.id, error: (e as Error).message });
    }
  });
  port.postMessage({ ready: true });
} catch (e) {
  port.postMessage({ ready: false, error: (e as Error).message });
}
