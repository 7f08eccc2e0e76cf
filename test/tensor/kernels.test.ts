// The kernel table against the generated WGSL modules: every kernelSpecs entry matches its module's
// bindings, every module compiles on the device, the generated file is current, and the package's
// core modules stay free of Node built-ins; a module that does not compile is reported with the
// compiler's messages, whether its pipeline was created at once or awaited.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DeviceError, hasF16, synchronize, tensor } from '@huatuo/tensor';
import { getRuntime, kernelSpecs, preprocess, variantKey, type Defines, wgslSources, type WgslName } from '@huatuo/tensor/internal';
import { gpu } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const kernelsDir = join(root, 'kernels');
const files = readdirSync(kernelsDir).filter((f) => f.endsWith('.wgsl')).sort();
const nameOf = (f: string) => f.slice(0, -'.wgsl'.length) as WgslName;

before(async () => {
  await gpu();
});

interface ParsedBinding {
  binding: number;
  kind: 'uniform' | 'storage';
  access: 'read' | 'read_write' | null;
  name: string;
}

function parseBindings(src: string): ParsedBinding[] {
  const re = /@group\(0\)\s*@binding\((\d+)\)\s*var<(uniform|storage)(?:,\s*(read_write|read))?>\s*(\w+)/g;
  const out: ParsedBinding[] = [];
  for (const m of src.matchAll(re)) {
    out.push({ binding: Number(m[1]), kind: m[2] as 'uniform' | 'storage', access: (m[3] ?? null) as ParsedBinding['access'], name: m[4]! });
  }
  return out.sort((a, b) => a.binding - b.binding);
}

test('every kernel file has a kernelSpecs entry and every entry has a file', () => {
  const names = files.map(nameOf).sort();
  assert.deepEqual(Object.keys(kernelSpecs).sort(), names);
});

test('every kernelSpecs entry matches its generated WGSL module: uniform at binding 0, then storage bindings in order', () => {
  for (const f of files) {
    const name = nameOf(f);
    const spec = kernelSpecs[name];
    const parsed = parseBindings(wgslSources[name]);
    const uniform = parsed.filter((b) => b.kind === 'uniform');
    if (spec.uniform) {
      assert.equal(uniform.length, 1, `${f}: spec says a uniform block, file has ${uniform.length}`);
      assert.equal(uniform[0]!.binding, 0, `${f}: the uniform block must be binding 0`);
    } else {
      assert.equal(uniform.length, 0, `${f}: spec says no uniform block, file has one`);
    }
    const storage = parsed.filter((b) => b.kind === 'storage');
    assert.deepEqual(
      storage.map((b) => ({ binding: b.binding, name: b.name, access: b.access ?? 'read' })),
      spec.bindings.map((b, i) => ({ binding: i + 1, name: b.name, access: b.access })),
      `${f}: storage bindings differ from kernelSpecs.${name}`,
    );
  }
});

/** Representative values of the `{{NAME}}` placeholders of the core kernels. */
const placeholderExamples: Record<string, string> = {
  EXPR: 'v',
  T_IS_F16: 'false',
  BIAS: 'false',
  ADD: 'false',
};
const binaryExpr = 'a * b + 1.0';

function placeholders(src: string): string[] {
  return [...new Set([...src.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]!))];
}

function aliases(src: string): string[] {
  return [...src.matchAll(/^alias (\w+) = \w+;$/gm)].map((m) => m[1]!);
}

async function compileErrors(code: string, label: string): Promise<string[]> {
  const module = getRuntime().device.createShaderModule({ code, label });
  const info = await module.getCompilationInfo();
  return info.messages.filter((m) => m.type === 'error').map((m) => `${label} line ${m.lineNum}:${m.linePos}: ${m.message}`);
}

test('every kernel file whose placeholders are known compiles on the device, in f32 and (with shader-f16) f16', async () => {
  const compiled: string[] = [];
  const skipped: string[] = [];
  for (const f of files) {
    const name = nameOf(f);
    const src: string = wgslSources[name];
    const holes = placeholders(src);
    if (holes.some((h) => placeholderExamples[h] === undefined)) {
      skipped.push(`${name} (${holes.join(', ')})`);
      continue;
    }
    const base: Record<string, string> = {};
    for (const h of holes) base[h] = name === 'binary' && h === 'EXPR' ? binaryExpr : placeholderExamples[h]!;
    const variants: Defines[] = [base];
    const typeAliases = aliases(src).filter((a) => a !== 'TC');
    if (hasF16() && typeAliases.length > 0) {
      variants.push({ ...base, ...Object.fromEntries(typeAliases.map((a) => [a, 'f16'])), ...(holes.includes('T_IS_F16') ? { T_IS_F16: 'true' } : {}) });
    }
    if (name === 'where') variants.push({ ...base, TC: 'f32' });
    if (holes.includes('BIAS')) variants.push(...variants.map((d) => ({ ...d, BIAS: 'true' })));
    if (holes.includes('ADD')) variants.push(...variants.map((d) => ({ ...d, ADD: 'true' })));
    for (const d of variants) {
      const errors = await compileErrors(preprocess(name, d), `${name}(${JSON.stringify(d)})`);
      assert.deepEqual(errors, [], errors.join('\n'));
    }
    compiled.push(name);
  }
  for (const core of ['unary', 'binary', 'where', 'fill', 'copy_strided', 'reduce_sum', 'reduce_max', 'scatter_max_grad', 'matmul']) {
    assert.ok(compiled.includes(core), `core kernel ${core} was not compiled (skipped: ${skipped.join('; ')})`);
  }
});

test('a variant key names the defines sorted, whatever order they are given in, and tells apart every name and value', () => {
  assert.equal(variantKey('unary', { TY: 'f16', TX: 'f32', EXPR: 'v * c' }), 'unary(EXPR=v * c,TX=f32,TY=f16)');
  assert.equal(variantKey('unary', { TX: 'f32', EXPR: 'v * c', TY: 'f16' }), 'unary(EXPR=v * c,TX=f32,TY=f16)');
  assert.equal(variantKey('unary', {}), 'unary()');
  assert.equal(variantKey('binary', { T: 'f32', EXPR: 'a + b' }), 'binary(EXPR=a + b,T=f32)');
  assert.equal(variantKey('binary', { T: 'f16', EXPR: 'a + b' }), 'binary(EXPR=a + b,T=f16)');
  assert.equal(variantKey('binary', { T: 'f32', EXPR: 'a * b' }), 'binary(EXPR=a * b,T=f32)');
});

/** A module using WGSL's reserved word `active` as a name, at line 4, column 7. */
const RESERVED_WORD = ['@group(0) @binding(1) var<storage, read_write> out: array<f32>;', '@compute @workgroup_size(1)', 'fn main() {', '  let active = 1.0;', '  out[0] = active;', '}'].join('\n');

/** Checks a refusal names the kernel, the compiler's message at line:column, and the line marked under the word. */
function reportsReservedWord(label: string) {
  return (e: unknown) => {
    assert.ok(e instanceof DeviceError, String(e));
    assert.match(e.message, new RegExp(`^kernel ${label}: shader module failed to compile`));
    assert.match(e.message, /\n {2}line 4:7 error: [^\n]*'active'[^\n]*reserved/);
    assert.ok(e.message.includes('\n      let active = 1.0;\n          ^^^^^^'), e.message);
    return true;
  };
}

test("a kernel created at once whose WGSL does not compile fails the next read with the compiler's message, not the device's invalid pipeline, and is compiled anew next time", async () => {
  const rt = getRuntime();
  const out = tensor(new Float32Array([3]), [1]);
  const refused = rt.kernel('reserved_word', RESERVED_WORD, 'reserved_word');
  rt.dispatch({ kernel: refused, buffers: [out.buffer('test')], workgroups: [1], label: 'reserved_word' });
  await assert.rejects(out.toArray(), reportsReservedWord('reserved_word'));
  assert.deepEqual([...(await out.toArray())], [3], 'the next read succeeds');
  assert.notEqual(rt.kernel('reserved_word', RESERVED_WORD, 'reserved_word'), refused, 'the refused pipeline is not cached');
  await assert.rejects(synchronize(), reportsReservedWord('reserved_word'));
  out.dispose();
});

test('a pipeline the adapter refuses is reported by kernelChecked, not raised at the next read', async () => {
  const rt = getRuntime();
  await assert.rejects(rt.kernelChecked('refused', '@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }', 'refused'), /kernel refused: shader module failed/);
  await assert.rejects(rt.kernelChecked('reserved_word_checked', RESERVED_WORD, 'reserved_word_checked'), reportsReservedWord('reserved_word_checked'));
  await synchronize();
  const k = await rt.kernelChecked('accepted', '@compute @workgroup_size(1) fn main() {}', 'accepted');
  assert.equal(await rt.kernelChecked('accepted', '', 'accepted'), k, 'a created pipeline is cached by key');
});

test('the generated kernel module is up to date with kernels/*.wgsl', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts/gen-kernels.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `gen-kernels --check failed: ${r.stderr}`);
});

test('an include expands at the indentation of its line, without its //! and /// lines', () => {
  const code = (name: string) =>
    readFileSync(join(kernelsDir, 'include', `${name}.wgsl`), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('//!') && !l.startsWith('///'));
  let indented = 0;
  for (const f of files) {
    const module = wgslSources[nameOf(f)];
    assert.doesNotMatch(module, /^(\/\/\/|\/\/!|\s*\{\{include )/m, `${f}: an include line or its //! or /// lines are left in the module`);
    for (const [, indent, name] of readFileSync(join(kernelsDir, f), 'utf8').matchAll(/^([ \t]+)\{\{include (\w+)\}\}$/gm)) {
      const lines = code(name!);
      assert.ok(lines.length > 0, `include ${name} has code`);
      assert.ok(module.includes(lines.map((l) => indent + l).join('\n')), `${f}: include ${name} expanded at its line's indentation`);
      indented++;
    }
  }
  assert.ok(indented > 0, 'some kernel includes statements inside a function');
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

test('the package sources import no Node built-ins and not webgpu, except the Node platform files', () => {
  const src = join(root, 'packages/tensor/src');
  // platform/node.ts and the module only it imports (Dawn's stderr notices) are the Node side, with the
  // quantizing worker pool that Node resolves `#quant-pool` to (browsers get quant/pool-browser.ts).
  const nodeOnly = new Set([join('platform', 'node.ts'), join('platform', 'native-stderr.ts'), join('quant', 'pool-node.ts'), join('quant', 'worker-node.ts')]);
  const builtins = /(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"](node:[\w/]+|fs|path|os|url|child_process|crypto|worker_threads|util|module|process|buffer|stream)['"]/;
  const dawn = /(?:from\s+|import\s*\(\s*)['"]webgpu['"]/;
  const offenders: string[] = [];
  for (const file of walk(src)) {
    const rel = relative(src, file);
    const text = readFileSync(file, 'utf8');
    if (nodeOnly.has(rel)) continue;
    if (/from\s+['"]\.{1,2}\/(?:platform\/)?native-stderr\.js['"]/.test(text)) offenders.push(`${rel} imports the Node-only native-stderr.ts`);
    if (/['"]\.{1,2}\/(?:quant\/)?(?:pool|worker)-node\.js['"]/.test(text)) offenders.push(`${rel} imports a Node-only quant module instead of #quant-pool`);
    const b = text.match(builtins);
    if (b) offenders.push(`${rel} imports ${b[1]}`);
    if (dawn.test(text)) offenders.push(`${rel} imports webgpu`);
  }
  assert.deepEqual(offenders, []);
  assert.match(readFileSync(join(src, 'platform/node.ts'), 'utf8'), /from 'webgpu'/);
});
