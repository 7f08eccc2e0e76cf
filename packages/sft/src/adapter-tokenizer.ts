// An adapter that brings its own vocabulary (trained embed_tokens and lm_head of modules_to_save on a vocabulary resized
// as Chinese-LLaMA-Alpaca's are) needs the tokenizer it was trained with, which such adapters ship beside their weights:
// read from the adapter's files (a folder in Node, files picked in a browser) and checked before the adapter attaches.
// Browser-safe.
import { readTokenizerFiles, tokenizerFileNames, tokenizerFromFiles, type AdapterTokenizer, type LoadAdapterOptions, type TokenizerLoadOptions } from '@huatuo/llama';

/** Where an adapter's tokenizer files are, and how a refusal is told to the user. */
export interface AdapterTokenizerFiles {
  /** One of the adapter's files by name (tokenizer.json, tokenizer.model, ...), undefined where there is none. */
  read(file: string): Promise<Uint8Array | undefined>;
  /** The adapter's files as messages name them: its folder, or the picked files. */
  readonly where: string;
  /** What to do where the tokenizer is missing, e.g. "copy the tokenizer the adapter was trained with into <folder>". */
  readonly whenMissing: string;
  /** The error a refusal is thrown as (the command line's names its flag). */
  refusal(message: string): Error;
}

/**
 * loadAdapter's (or loadAdapterFromFiles') options that read the adapter's own tokenizer from `files` where its trained
 * embed_tokens resizes the vocabulary; the model keeps it in `savedModules.tokenizer` while the adapter is attached
 * (a BaseModel's `tokenizer` is then that one), with the files it was read from (those of tokenizerFileNames that
 * `files` hold, byte for byte), which saving the adapter writes back; removing or replacing the adapter puts the base's back.
 * Refused before anything attaches where `files` hold no tokenizer, or one with more pieces than the adapter's vocabulary.
 * `tokenizerOptions` are tokenizerFromFiles' (trustTokenizerPatterns).
 *
 * @example await loadAdapter(base.model, dir, adapterTokenizerOptions(folderTokenizerFiles(dir)));
 */
export function adapterTokenizerOptions(files: AdapterTokenizerFiles, tokenizerOptions: TokenizerLoadOptions = {}): LoadAdapterOptions {
  return {
    adapterTokenizer: async ({ vocabSize, baseVocabSize }): Promise<AdapterTokenizer> => {
      const bytes = new Map<string, Uint8Array>();
      for (const name of tokenizerFileNames) {
        const read = await files.read(name);
        if (read !== undefined) bytes.set(name, read);
      }
      const found = await readTokenizerFiles(async (file) => bytes.get(file));
      if (found === null) {
        throw files.refusal(
          `${files.where} trains embed_tokens and lm_head on a vocabulary of ${vocabSize} pieces (the base has ${baseVocabSize}), but holds no tokenizer (tokenizer.model or tokenizer.json); ${files.whenMissing}`,
        );
      }
      const tokenizer = tokenizerFromFiles(found, files.where, tokenizerOptions);
      if (tokenizer.vocabSize > vocabSize) {
        throw files.refusal(`the tokenizer in ${files.where} has ${tokenizer.vocabSize} pieces, more than the ${vocabSize} rows of the adapter's embed_tokens; it is not the tokenizer the adapter was trained with`);
      }
      return { tokenizer, files: bytes };
    },
  };
}
