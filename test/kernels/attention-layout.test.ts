// The v2 attention layouts chosen per adapter: within a GPU's register budget at every head dim v2
// supports (rows re-read where keeping them would pass it), and unchanged where subgroups are narrow.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeviceInfo } from '@huatuo/tensor';
import { v2Layout, v2PrivateValues, type V2Kernel } from '@huatuo/tensor/internal';

const KERNELS: V2Kernel[] = ['attention_forward.v2', 'attention_backward_dq.v2', 'attention_backward_dkv.v2'];

function adapter(sg: number): DeviceInfo {
  return {
    platform: 'test',
    adapterName: `subgroup ${sg}`,
    features: new Set(['subgroups']),
    maxStorageBufferBindingSize: 1 << 30,
    maxBufferSize: 1 << 30,
    maxComputeWorkgroupsPerDimension: 65535,
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: 1024,
    isFallbackAdapter: false,
    memoryBytes: null,
    subgroupMinSize: sg,
    subgroupMaxSize: sg,
    subgroupMatrixConfigs: [],
  };
}

test('on a 32-wide subgroup every v2 layout stays within 800 private values a lane, re-reading rows at D = 256', () => {
  const info = adapter(32);
  for (const D of [128, 256]) {
    for (const k of KERNELS) {
      const l = v2Layout(info, D, k);
      assert.ok(l, `${k} D=${D} has a v2 layout`);
      assert.ok(v2PrivateValues(k, l) <= 800, `${k} D=${D}: ${v2PrivateValues(k, l)} values a lane`);
    }
  }
  // The layout an H200 refused (dq, D = 256, rows kept) is over the budget and not chosen.
  assert.equal(v2PrivateValues('attention_backward_dq.v2', { sg: 32, rpl: 1, dl: 2, keepRows: true }), 1088);
  assert.equal(v2Layout(info, 256, 'attention_backward_dq.v2')?.keepRows, false);
  assert.equal(v2Layout(info, 256, 'attention_forward.v2')?.keepRows, true);
  assert.equal(v2Layout(info, 128, 'attention_backward_dkv.v2')?.keepRows, true);
});

test('narrow subgroups keep their rows at every head dim v2 supports, and unsupported shapes get no v2', () => {
  for (const sg of [4, 8, 16]) {
    for (const D of [4 * sg, 8 * sg, 16 * sg]) {
      for (const k of KERNELS) assert.equal(v2Layout(adapter(sg), D, k)?.keepRows, true, `sg=${sg} D=${D} ${k}`);
    }
  }
  assert.equal(v2Layout(adapter(8), 36, 'attention_forward.v2'), null, 'D not a multiple of 4 sg');
  assert.equal(v2Layout(adapter(8), 256, 'attention_forward.v2'), null, 'more than 4 vec4 columns a lane');
  assert.equal(v2Layout(adapter(64), 256, 'attention_forward.v2'), null, 'a subgroup size v2 is not written for');
});
