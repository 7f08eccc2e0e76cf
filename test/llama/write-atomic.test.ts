// writeFileAtomic: the target holds the old content or the new one, never a part; a failed write
// leaves no temp file behind; text, bytes and streamed writes all land whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '@huatuo/llama';

const folder = () => mkdtempSync(join(tmpdir(), 'write-atomic-'));

test('text, bytes and a streaming writer each replace the file whole, leaving only the target in the folder', async () => {
  const dir = folder();
  const path = join(dir, 'out.txt');
  await writeFileAtomic(path, 'first 文本\n');
  assert.equal(readFileSync(path, 'utf8'), 'first 文本\n');
  await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...readFileSync(path)], [1, 2, 3]);
  await writeFileAtomic(path, async (file) => {
    await file.write('a');
    await file.write('b');
  });
  assert.equal(readFileSync(path, 'utf8'), 'ab');
  assert.deepEqual(readdirSync(dir), ['out.txt']);
});

test('a writer that throws part-way leaves the existing file unchanged and removes its temp file', async () => {
  const dir = folder();
  const path = join(dir, 'answers.jsonl');
  writeFileSync(path, 'precious\n');
  await assert.rejects(
    writeFileAtomic(path, async (file) => {
      await file.write('half a line');
      throw new Error('generation failed');
    }),
    /generation failed/,
  );
  assert.equal(readFileSync(path, 'utf8'), 'precious\n');
  assert.deepEqual(readdirSync(dir), ['answers.jsonl']);
});

test('a folder that does not exist is an ENOENT error and creates nothing', async () => {
  const dir = folder();
  await assert.rejects(writeFileAtomic(join(dir, 'missing', 'x.json'), '{}'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
  assert.deepEqual(readdirSync(dir), []);
});

test('mode sets the new file\'s permission bits', { skip: process.platform === 'win32' }, async () => {
  const path = join(folder(), 'key.json');
  await writeFileAtomic(path, '{}', { mode: 0o600 });
  assert.equal(statSync(path).mode & 0o777, 0o600);
});
