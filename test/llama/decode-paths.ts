// generate on each of its decoding paths, for the tests that compare them: picks on the GPU one step ahead
// (pipelined), picks on the GPU one step at a time, or picks on the host from the logits read back.
import { generate, type GenerateOptions, type Generation, type LlamaModel } from '@huatuo/llama';
import { setDecodePipelined, setHostPicks } from '@huatuo/llama/internal';

export type DecodePath = 'gpu' | 'gpu-stepwise' | 'host';

/** generate without end-of-sequence tokens (so every row runs maxNewTokens) on `path`; the default path after. */
export async function generateOn(model: LlamaModel, prompts: number[][], options: GenerateOptions, path: DecodePath): Promise<Generation[]> {
  setHostPicks(path === 'host');
  setDecodePipelined(path === 'gpu');
  try {
    return await generate(model, null, prompts, { eosTokenIds: [], ...options });
  } finally {
    setHostPicks(false);
    setDecodePipelined(true);
  }
}
