// What initWebGPU tells a user whose Node finds no WebGPU adapter, seen as that user sees it: a process whose Vulkan
// loader finds no driver (VK_ICD_FILENAMES naming none). The hint must serve an npm install of @huatuo/tensor, which has
// no scripts/setup.sh, as well as a checkout of the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

const noDriver = { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' };
const program = "import { initWebGPU } from '@huatuo/tensor'; try { await initWebGPU(); console.log('adapter found'); } catch (err) { console.log(`${err.name}: ${err.message}`); }";

test('with no WebGPU adapter, initWebGPU says what to install by apt, and names scripts/setup.sh only for a checkout of the repository', { skip: process.platform !== 'linux' && 'the Vulkan loader is Linux only' }, () => {
  const out = execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', program], { env: noDriver, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  assert.match(out, /^DeviceError: .*Node found no WebGPU adapter/, out);
  assert.ok(out.includes('apt-get install libvulkan1 mesa-vulkan-drivers'), out);
  assert.ok(out.includes('add bookworm-backports to the apt sources, then `sudo apt-get install -t bookworm-backports libvulkan1 mesa-vulkan-drivers`'), out);
  const mentions = [...out.matchAll(/scripts\/setup\.sh/g)].map((m) => out.slice(Math.max(0, m.index - 60), m.index));
  assert.equal(mentions.length, 1, out);
  assert.match(mentions[0]!, /In a checkout of the huatuo-webgpu repository, `bash $/, out);
});
