// trainer_state.json is written as transformers' TrainerState.save_to_json writes it (json.dumps(indent=2,
// sort_keys=True) and a newline), TrainerState's float fields as Python floats, so that Python's json.load reads
// the types it reads from the Trainer's files: total_flos 1.2345e+16 or 947712.0, epoch 1.0, learning_rate 0.0.
// The reference texts come from Python (scripts/fixtures/make-trainer-state-json-fixture.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseTrainerStateJson, pythonFloatRepr, trainerStateJson } from '@huatuo/sft/internal';

const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/sft/trainer-state-json.json', import.meta.url)), 'utf8')) as {
  floats: [number, string][];
  nonFinite: string[];
  states: string[];
};

test("pythonFloatRepr writes a float as Python's json.dumps does: shortest digits, .0 on integral values, exponent form below 1e-4 and from 1e16", () => {
  for (const [x, repr] of fixture.floats) assert.equal(pythonFloatRepr(x), repr, `repr(${x})`);
  assert.deepEqual([NaN, Infinity, -Infinity].map(pythonFloatRepr), fixture.nonFinite);
});

test("trainer_state.json's text is the Trainer's save_to_json text of the same state, and reads back as the same values", () => {
  for (const text of fixture.states) {
    // JSON.parse gives integral floats as integers (1.0 as 1): the writer knows TrainerState's float fields.
    const state = parseTrainerStateJson(text) as Record<string, unknown>;
    assert.equal(trainerStateJson(state), text);
    assert.deepEqual(parseTrainerStateJson(trainerStateJson(state)), state);
  }
  const skipped = parseTrainerStateJson(fixture.states[1]!) as { log_history: { grad_norm?: number }[] };
  assert.equal(skipped.log_history[0]!.grad_norm, Infinity, "json.dumps's Infinity reads back as a number");
});

test("the run's own fields keep their numbers as JavaScript writes them; strings that hold NaN or Infinity stay strings", () => {
  const text = trainerStateJson({ step: 3, history: [{ step: 3, lr: 0 }], note: 'NaN "Infinity" -Infinity', epoch: 1, total_flos: 0 });
  assert.equal(text, '{\n  "epoch": 1.0,\n  "history": [\n    {\n      "lr": 0,\n      "step": 3\n    }\n  ],\n  "note": "NaN \\"Infinity\\" -Infinity",\n  "step": 3,\n  "total_flos": 0.0\n}\n');
  assert.deepEqual(parseTrainerStateJson(text), { step: 3, history: [{ step: 3, lr: 0 }], note: 'NaN "Infinity" -Infinity', epoch: 1, total_flos: 0 });
});
