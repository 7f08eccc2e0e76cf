// Public surface of @huatuo/sus: SUS evaluation (Safety, Usability, Smoothness) as the
// HuaTuo paper ran it, from blinded study to Table 4.

export { buildSusCommand, runSusCli } from './cli.js';
export type { SusCommandIo } from './cli.js';
export {
  DIMENSIONS,
  DEFAULT_LEAK_WORDS,
  SECRET_MODE,
  STUDY_FILES,
  annotatorSeed,
  createStudy,
  extendStudy,
  findLeaks,
  loadStudy,
  orderFor,
  readQuestions,
  readResponses,
  saveStudy,
} from './blind.js';
export type { CreateStudyOptions, CreateStudyResult, Dimension, LeakFlag, Question, ResponseRecord, Study, StudyAnnotator, StudyItem, StudyKey } from './blind.js';
export { RatingStore, SHEET_COLUMNS, exportSheet, isRatingValue, parseSheet } from './ratings.js';
export type { Rating, SheetFormat } from './ratings.js';
export { annotatorAgreement, krippendorffAlpha } from './agreement.js';
export type { AlphaLevel, AnnotatorAgreement, ReliabilityData } from './agreement.js';
export { fleissKappa, fleissKappaOfRatings } from './fleiss.js';
export type { CategoryKappa, FleissKappa } from './fleiss.js';
export { averageRanks, holm, mean, normalCdf, quantile, sampleSd, signFlipTest, wilcoxonSignedRank } from './stats.js';
export type { PairedTestResult } from './stats.js';
export { createRng, hashString } from './rng.js';
export type { Rng } from './rng.js';
export { scoreStudy } from './report.js';
export { reportCsv, reportMarkdown, reportSvg, writeReport } from './report-output.js';
export type { Cell, Comparison, DimensionAgreement, ScoreOptions, SusReport } from './report.js';
export { judgeItem, judgeItems, judgePrompt, parseVerdict, verdictRatings } from './judge.js';
export type { JudgeOptions, JudgeVerdict } from './judge.js';
export { MAX_BODY_BYTES, startAnnotationServer } from './server.js';
export type { AnnotationServer, AnnotationServerOptions } from './server.js';
export { ANNOTATION_PAGE } from './page.js';
export { RUBRIC, SCALE } from './rubric.js';
export type { RubricEntry } from './rubric.js';
export { parseCsv, toCsv } from './csv.js';
export { StudyFormatError, JudgeError, RatingError, StatsError, StudyError, SusError } from './errors.js';
