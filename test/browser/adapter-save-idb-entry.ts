// Browser entry of the IndexedDB adapter-save test: saves an old or a new adapter of a small LLaMA into the run files
// (IndexedDB), optionally with the browser's storage failing the write of adapter_config.json (a full quota), and
// reads the folder back for comparison in Node.
import { initWebGPU } from '@huatuo/tensor';
import { applyLora, configFromPreset, createRandomLlama } from '@huatuo/llama';
import { runFiles } from '@huatuo/sft';

export const ADAPTER_DIR = 'adapter-save-test/out';

/** Saves the old adapter (r=4 on q_proj) or the new one (r=8 on q_proj and v_proj); the error message where it failed. */
async function saveAdapterVersion(version: 'old' | 'new', quotaFullAtConfig: boolean): Promise<string | null> {
  await initWebGPU();
  const model = createRandomLlama(configFromPreset('tiny', { hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 2 }), { seed: 1 });
  if (version === 'old') applyLora(model, { r: 4, alpha: 8, targetModules: ['q_proj'] }, { seed: 3 });
  else applyLora(model, { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'] }, { seed: 4 });
  const put = IDBObjectStore.prototype.put;
  if (quotaFullAtConfig) {
    IDBObjectStore.prototype.put = function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
      if (String(key).endsWith('adapter_config.json')) throw new DOMException('the quota is full', 'QuotaExceededError');
      return put.call(this, value, key);
    };
  }
  try {
    await runFiles.saveAdapter(model, ADAPTER_DIR, 'base');
    return null;
  } catch (err) {
    return String(err);
  } finally {
    IDBObjectStore.prototype.put = put;
    model.dispose();
  }
}

/** The adapter folder's files: each name with its bytes. */
async function readAdapterFolder(): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of (await runFiles.list(ADAPTER_DIR)).sort()) out[name] = [...(await runFiles.readBytes(runFiles.join(ADAPTER_DIR, name)))];
  return out;
}

Object.assign(globalThis, { saveAdapterVersion, readAdapterFolder });
