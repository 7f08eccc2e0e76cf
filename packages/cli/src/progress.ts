// Progress of a training run as a one-line bar on a terminal, or as plain log lines otherwise.
import { replacedCheckpoint, type ProgressEvent } from '@huatuo/sft';

/** What a resume from a checkpoint set aside by an interrupted save of its step means, or ''. */
function restoredNote(checkpoint: string | undefined): string {
  const name = checkpoint === undefined ? null : replacedCheckpoint(checkpoint);
  return name === null ? '' : ` (the checkpoint of that step as it was before a save of the step was interrupted; the next save renames it back to ${name})`;
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** A progress reporter writing to `out`: a redrawn bar when `tty`, log lines otherwise. */
export function progressReporter(out: { write(s: string): unknown }, tty: boolean): (e: ProgressEvent) => void {
  let lastLoss: number | undefined;
  let lastLr: number | undefined;
  let lastTps: number | undefined;
  let firstStepAt: { step: number; sec: number } | null = null;
  let barShown = false;
  const line = (s: string) => {
    if (barShown) out.write('\r\x1b[K');
    barShown = false;
    out.write(`${s}\n`);
  };
  return (e) => {
    if (e.loss !== undefined) lastLoss = e.loss;
    if (e.lr !== undefined) lastLr = e.lr;
    if (e.tokensPerSec !== undefined) lastTps = e.tokensPerSec;
    firstStepAt ??= { step: e.step, sec: e.elapsedSec };
    const done = e.step - firstStepAt.step;
    const rate = done > 0 ? (e.elapsedSec - firstStepAt.sec) / done : NaN;
    const eta = clock(rate * (e.totalSteps - e.step));
    const stats = [
      lastLoss !== undefined ? `loss ${lastLoss.toFixed(4)}` : '',
      lastLr !== undefined ? `lr ${lastLr.toExponential(2)}` : '',
      lastTps !== undefined ? `${Math.round(lastTps)} tok/s` : '',
    ]
      .filter(Boolean)
      .join('  ');
    switch (e.kind) {
      case 'resume':
        line(`resumed from ${e.checkpoint} at step ${e.step}/${e.totalSteps}${restoredNote(e.checkpoint)}`);
        break;
      case 'step':
        if (tty) {
          const width = 24;
          const filled = Math.round((width * e.step) / e.totalSteps);
          out.write(`\r\x1b[K[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${e.step}/${e.totalSteps}  ${stats}  ETA ${eta}`);
          barShown = true;
        }
        break;
      case 'log':
        if (!tty) line(`step ${e.step}/${e.totalSteps}  ${stats}  elapsed ${clock(e.elapsedSec)}  ETA ${eta}`);
        break;
      case 'eval':
        line(`step ${e.step}/${e.totalSteps}  validation loss ${e.valLoss?.toFixed(4)}`);
        break;
      case 'save':
        line(`step ${e.step}/${e.totalSteps}  checkpoint ${e.checkpoint}`);
        break;
      case 'done':
        if (barShown) out.write('\n');
        barShown = false;
        break;
    }
    for (const warning of e.warnings ?? []) line(`warning: ${warning}`);
  };
}
