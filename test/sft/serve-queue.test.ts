// The serve queue against real HTTP connections: a request whose client has left before it is
// queued (while its body was read and tokenized) is skipped, not run for nobody.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Generation } from '@huatuo/llama';
import type { ServeEvent } from '@huatuo/sft';
import { JobQueue, type Job } from '@huatuo/sft/internal';

/**
 * The server side of two requests: one whose client sent it and closed its connection, handed
 * over only after the server saw the close, and one whose client waits for its answer.
 */
async function twoResponses(): Promise<{ gone: ServerResponse; live: ServerResponse; answered: Promise<string>; close: () => void }> {
  const responses: ServerResponse[] = [];
  let handed = (): void => {};
  const hand = (i: number, res: ServerResponse): void => {
    responses[i] = res;
    handed();
  };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url !== '/gone') hand(1, res);
      else if (res.closed) hand(0, res);
      else res.on('close', () => hand(0, res));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const send = (path: string, then: (s: ReturnType<typeof connect>) => void) => {
    const s = connect(port, '127.0.0.1', () => s.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2\r\n\r\n{}`, () => then(s)));
    return s;
  };
  send('/gone', (s) => s.destroy());
  let reply = '';
  const answered = new Promise<string>((resolve) => {
    const s = send('/live', () => {});
    s.on('data', (d: Buffer) => (reply += d.toString()));
    s.on('end', () => resolve(reply));
    s.on('close', () => resolve(reply));
  });
  await new Promise<void>((r) => {
    handed = () => {
      if (responses[0] !== undefined && responses[1] !== undefined) r();
    };
    handed();
  });
  return { gone: responses[0]!, live: responses[1]!, answered, close: () => (server.closeAllConnections(), server.close()) };
}

function job(id: string, res: ServerResponse): Job {
  const sampling = { maxTokens: 4, doSample: false, temperature: 1, topP: 1, topK: 0, numBeams: 1, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0, logitBias: new Map(), stop: [], includeStop: false, seed: 0, n: 1, bestOf: 1 };
  return { id, kind: 'chat', created: 0, prompt: [1], echo: '', strip: true, sampling, stream: false, streamWhole: false, includeUsage: false, continuousUsage: false, logprobs: null, promptLogprobs: null, echoPrompt: false, echoOnly: false, res, cancelled: false, tokens: 0 };
}

test('a request whose client left before it was queued is skipped as cancelled; the next one runs', async () => {
  const { gone, live, answered, close } = await twoResponses();
  assert.ok(gone.closed && !live.closed);
  const ran: string[] = [];
  const events: ServeEvent[] = [];
  const queue = new JobQueue(
    4,
    async (j) => {
      ran.push(j.id);
      j.res.setHeader('connection', 'close');
      j.res.end('answer');
      return [{ promptTokens: j.prompt, tokens: [7], text: 'answer', finishReason: 'length' } satisfies Generation];
    },
    (e) => events.push(e),
  );
  try {
    queue.push(job('chatcmpl-gone', gone));
    queue.push(job('chatcmpl-live', live));
    assert.match(await answered, /answer$/);
    assert.deepEqual(ran, ['chatcmpl-live'], 'only the request whose client waits runs');
    const gonesEnd = events.find((e) => e.id === 'chatcmpl-gone' && e.type !== 'queued');
    assert.equal(gonesEnd?.type, 'cancelled', events.map((e) => `${e.type} ${e.id}`).join(', '));
  } finally {
    await queue.close();
    close();
  }
});
