// An OpenAI-compatible chat-completions server on 127.0.0.1 for the gen-data
// tests: it reads the knowledge out of each prompt and answers from it, and
// misbehaves on a schedule (429, 500, invalid JSON, an answer without the entity, hanging).

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the server does with request number i (0-based, counting every request). */
export type Behaviour = 'ok' | '429' | '500' | 'invalid-json' | 'no-entity' | 'hang';

export interface ChatServer {
  url: string;
  /** Requests seen, per behaviour applied. */
  counts: Record<Behaviour, number>;
  /** Bodies of the requests, in arrival order. */
  requests: { model: string; prompt: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

/** The knowledge embedded in a prompt: the JSON object between ```json and ```. */
export function knowledgeFromPrompt(prompt: string): Record<string, unknown> {
  const start = prompt.indexOf('```json\n');
  const end = prompt.indexOf('\n```', start + 8);
  if (start < 0 || end < 0) throw new Error(`no fenced knowledge in prompt: ${prompt.slice(0, 80)}`);
  return JSON.parse(prompt.slice(start + 8, end)) as Record<string, unknown>;
}

/** Question and answer composed from the knowledge, answer listing every value. */
export function composeFrom(knowledge: Record<string, unknown>): { question: string; answer: string } {
  const name = String(knowledge['中心词']);
  const attrs = Object.keys(knowledge).filter((k) => k !== 'class' && k !== '中心词');
  const question = `医生您好，我想问一下${name}的${attrs.join('和')}分别是什么？`;
  const answer = `${name}：` + attrs.map((a) => `${a}为${(knowledge[a] as string[]).join('、')}`).join('；') + '。';
  return { question, answer };
}

export async function startChatServer(behaviour: (i: number, knowledge: Record<string, unknown>) => Behaviour, delayMs = 0): Promise<ChatServer> {
  const counts: Record<Behaviour, number> = { ok: 0, '429': 0, '500': 0, 'invalid-json': 0, 'no-entity': 0, hang: 0 };
  const requests: ChatServer['requests'] = [];
  let i = 0;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404).end('not found');
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model: string; messages: { role: string; content: string }[] };
      const prompt = body.messages.filter((m) => m.role === 'user').map((m) => m.content).join('\n');
      requests.push({ model: body.model, prompt, authorization: req.headers.authorization });
      const knowledge = knowledgeFromPrompt(prompt);
      const b = behaviour(i++, knowledge);
      counts[b]++;
      if (b === 'hang') return;
      const send = (): void => {
        if (b === '429') {
          res.writeHead(429, { 'retry-after': '0', 'content-type': 'application/json' }).end('{"error":"rate limited"}');
          return;
        }
        if (b === '500') {
          res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"internal"}');
          return;
        }
        let content: string;
        if (b === 'invalid-json') content = '好的，这是问答：问题是……（没有JSON）';
        else {
          const qa = composeFrom(knowledge);
          if (b === 'no-entity') qa.answer = qa.answer.replaceAll(String(knowledge['中心词']), '该病');
          content = '```json\n' + JSON.stringify(qa) + '\n```';
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({ id: `c${i}`, object: 'chat.completion', model: body.model, choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] }),
        );
      };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
  };
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    counts,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
