// The `sus` command of `huatuo-train`: create / export / import / serve / score / judge.
// Only this module prints; errors propagate to the caller (huatuo-train prints them and exits 1).

import { Command, Option } from 'commander';
import { extname, join } from 'node:path';
import { createStudy, extendStudy, loadStudy, readQuestions, readResponses, STUDY_FILES, type ResponseRecord } from './blind.js';
import { StudyError, SusError } from './errors.js';
import { readText, writeFileAtomic } from './files.js';
import { judgeItems, verdictRatings } from './judge.js';
import { exportSheet, parseSheet, RatingStore, type SheetFormat } from './ratings.js';
import { scoreStudy } from './report.js';
import { writeReport } from './report-output.js';
import { startAnnotationServer } from './server.js';

/** Where the command writes its human-readable lines (default: console.log). */
export interface SusCommandIo {
  print?: (line: string) => void;
  /** Called by `serve` once listening, with a function that stops it (tests use it). */
  onServe?: (stop: () => Promise<void>) => void;
}

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new StudyError(`${name} must be a non-negative integer; got "${v}"`);
  return n;
};

/** A comma-separated flag's entries. */
const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter((s) => s !== '');

function sheetFormat(file: string, given: string | undefined): SheetFormat {
  const f = given ?? extname(file).slice(1).toLowerCase();
  if (f !== 'csv' && f !== 'jsonl') throw new StudyError(`cannot tell the sheet format of ${file}; pass --format csv or --format jsonl`);
  return f;
}

/**
 * Builds the `sus` command with subcommands create, export, import, serve, score and judge.
 * @example program.addCommand(buildSusCommand());
 */
export function buildSusCommand(io: SusCommandIo = {}): Command {
  const print = io.print ?? ((line: string) => console.log(line));
  const sus = new Command('sus').description(
    'SUS evaluation (Safety, Usability, Smoothness, each rated 1-3) as in HuaTuo\'s Table 4: blinded studies, annotation sheets and web page, scoring, LLM judge',
  );

  sus
    .command('create')
    .description('create a blinded study (or add models / annotators to one with --extend)')
    .requiredOption('--out <dir>', 'study directory (study.json, key.json, tokens.json, ratings.sqlite)')
    .option('--questions <file>', 'questions, JSONL/JSON of {id, question} or {instruction, input}')
    .requiredOption('--responses <files...>', 'responses: JSONL {id, question, model, response}, or MODEL=FILE for `huatuo-train generate` output ({question, answer})')
    .option('--annotators <names>', 'comma-separated annotator names', '')
    .option('--seed <n>', 'study seed (recorded; annotator orders derive from it)', int('--seed'))
    .option('--leak-words <words>', 'comma-separated words that give a model away (default: LLaMA, Alpaca, ChatGLM, HuaTuo, 华驼, ...)')
    .option('--keep-leaks', 'keep flagged responses in the study (default: leave them out)', false)
    .option('--extend', 'add to an existing study without reshuffling existing items', false)
    .action((o: { out: string; questions?: string; responses: string[]; annotators: string; seed?: number; leakWords?: string; keepLeaks: boolean; extend: boolean }) => {
      const questions = o.questions ? readQuestions(o.questions) : undefined;
      const responses: ResponseRecord[] = o.responses.flatMap((spec) => {
        const eq = spec.indexOf('=');
        const [model, file] = eq > 0 ? [spec.slice(0, eq), spec.slice(eq + 1)] : [undefined, spec];
        return readResponses(file, { ...(model ? { model } : {}), ...(questions ? { questions } : {}) });
      });
      const annotators = o.annotators.split(',').map((s) => s.trim()).filter(Boolean);
      const leakWords = o.leakWords?.split(',').map((s) => s.trim()).filter(Boolean);
      const common = { responses, annotators, keepLeaks: o.keepLeaks, ...(questions ? { questions } : {}), ...(leakWords ? { leakWords } : {}) };
      const r = o.extend ? extendStudy(o.out, common) : createStudy(o.out, { ...common, ...(o.seed === undefined ? {} : { seed: o.seed }) });
      print(`study ${o.out}: ${r.study.items.length} items (${r.added} added), ${r.study.annotators.length} annotators, seed ${r.study.seed}`);
      for (const f of r.flagged) print(`flagged ${f.code} (model ${f.model}, question ${f.questionId}): names ${f.words.join(', ')}${o.keepLeaks ? '' : '; left out'}`);
      if (r.missing.length > 0) print(`missing responses: ${r.missing.length} (first: ${r.missing[0]})`);
      print(`secrets (mode 0600, readable by you only): ${join(o.out, STUDY_FILES.key)} (code -> model) and ${join(o.out, STUDY_FILES.tokens)} (private links); keep them away from annotators`);
    });

  sus
    .command('export')
    .description('write an annotator\'s sheet (CSV or JSONL) to fill offline')
    .requiredOption('--study <dir>', 'study directory')
    .requiredOption('--annotator <name>', 'annotator')
    .requiredOption('--out <file>', 'sheet to write (.csv or .jsonl)')
    .addOption(new Option('--format <format>', 'sheet format (default: from the file extension)').choices(['csv', 'jsonl']))
    .action((o: { study: string; annotator: string; out: string; format?: string }) => {
      const { study } = loadStudy(o.study);
      const store = RatingStore.open(join(o.study, STUDY_FILES.ratings));
      try {
        writeFileAtomic(o.out, exportSheet(study, o.annotator, sheetFormat(o.out, o.format), store.list(o.annotator)));
      } finally {
        store.close();
      }
      print(`wrote ${o.out}`);
    });

  sus
    .command('import')
    .description('validate a filled sheet and store its ratings (all or none)')
    .requiredOption('--study <dir>', 'study directory')
    .requiredOption('--annotator <name>', 'annotator the sheet belongs to')
    .requiredOption('--file <file>', 'filled sheet (.csv or .jsonl)')
    .addOption(new Option('--format <format>', 'sheet format (default: from the file extension)').choices(['csv', 'jsonl']))
    .action((o: { study: string; annotator: string; file: string; format?: string }) => {
      const { study } = loadStudy(o.study);
      const ratings = parseSheet(readText(o.file), sheetFormat(o.file, o.format), o.file, study, o.annotator);
      const store = RatingStore.open(join(o.study, STUDY_FILES.ratings));
      try {
        store.rateMany(ratings);
      } finally {
        store.close();
      }
      print(`imported ${ratings.length} ratings of ${o.annotator} from ${o.file}`);
    });

  sus
    .command('serve')
    .description('serve the annotation page; each annotator opens their private link')
    .requiredOption('--study <dir>', 'study directory')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', int('--port'), 8080)
    .option('--allowed-hosts <names>', 'comma-separated Host names to accept besides the bound address and localhost (e.g. a proxy\'s name)', list, [])
    .option('--cors-origin <origins>', 'comma-separated origins (scheme://host:port, or *) whose pages may call the API', list, [])
    .action(async (o: { study: string; host: string; port: number; allowedHosts: string[]; corsOrigin: string[] }) => {
      const s = await startAnnotationServer(o.study, { host: o.host, port: o.port, allowedHosts: o.allowedHosts, corsOrigins: o.corsOrigin });
      print(`serving ${s.url}`);
      for (const [name, link] of Object.entries(s.links)) print(`${name}: ${link}`);
      await new Promise<void>((resolve) => {
        const stop = async (): Promise<void> => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          await s.close();
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        io.onServe?.(stop);
      });
    });

  sus
    .command('score')
    .description('Table 4 (mean, SD, n, bootstrap CI), paired tests, agreement; writes Markdown, CSV, JSON and SVG')
    .requiredOption('--study <dir>', 'study directory')
    .requiredOption('--out <dir>', 'report directory')
    .option('--seed <n>', 'bootstrap seed', int('--seed'), 1)
    .option('--bootstrap <n>', 'bootstrap replicates', int('--bootstrap'), 2000)
    .option('--include-judges', 'count judge ratings in Table 4 (they always count in agreement)', false)
    .action((o: { study: string; out: string; seed: number; bootstrap: number; includeJudges: boolean }) => {
      const { study, key } = loadStudy(o.study);
      const store = RatingStore.open(join(o.study, STUDY_FILES.ratings));
      let ratings;
      try {
        ratings = store.list();
      } finally {
        store.close();
      }
      const report = scoreStudy(study, key, ratings, { seed: o.seed, bootstrap: o.bootstrap, includeJudges: o.includeJudges });
      for (const f of writeReport(o.out, report)) print(`wrote ${f}`);
      if (report.flaggedAnnotators.length > 0) print(`annotators far off the rest: ${report.flaggedAnnotators.join(', ')}`);
    });

  sus
    .command('judge')
    .description('rate every item with an LLM through an OpenAI-compatible chat-completions endpoint, as one more annotator')
    .requiredOption('--study <dir>', 'study directory')
    .requiredOption('--judge-url <url>', 'base URL, e.g. http://127.0.0.1:8000/v1')
    .requiredOption('--judge-model <name>', 'model name for the endpoint')
    .option('--judge-key-env <var>', 'environment variable holding the API key', 'OPENAI_API_KEY')
    .option('--retries <n>', 'extra attempts after an unparseable reply', int('--retries'), 2)
    .option('--name <annotator>', 'annotator name of the judge (default judge:<model>)')
    .option('--redo', 'judge again items already judged', false)
    .action(async (o: { study: string; judgeUrl: string; judgeModel: string; judgeKeyEnv: string; retries: number; name?: string; redo: boolean }) => {
      const { study } = loadStudy(o.study);
      const name = o.name ?? `judge:${o.judgeModel}`;
      if (!name.startsWith('judge:')) throw new StudyError(`--name must start with "judge:" so reports can tell the judge from humans; got "${name}"`);
      const store = RatingStore.open(join(o.study, STUDY_FILES.ratings));
      try {
        const done = new Set(store.list(name).map((r) => r.code));
        const todo = o.redo ? study.items : study.items.filter((i) => !done.has(i.code));
        const apiKey = process.env[o.judgeKeyEnv];
        let missing = 0;
        await judgeItems(todo, { url: o.judgeUrl, model: o.judgeModel, retries: o.retries, ...(apiKey ? { apiKey } : {}) }, (v) => {
          store.rateMany(verdictRatings(v, name));
          if (v.error) {
            missing++;
            print(`${v.code}: no verdict after ${v.attempts} attempts (${v.error}); recorded as missing`);
          }
        });
        print(`judged ${todo.length} items as ${name}; ${missing} missing`);
      } finally {
        store.close();
      }
    });
  return sus;
}

/** Runs `sus` as a program: prints a SusError's message and sets exit code 1 (other errors propagate). */
export async function runSusCli(argv: readonly string[]): Promise<void> {
  try {
    await buildSusCommand().parseAsync([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof SusError) {
      console.error(`error: ${e.message}`);
      process.exitCode = 1;
    } else throw e;
  }
}
