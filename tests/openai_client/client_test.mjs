// client_test.mjs: the official OpenAI Node client, unchanged, against a running `rlj teacher`. Environment:
// RLJ_TEACHER_BASE_URL (http://host:port/v1) and RLJ_TEACHER_MODEL (the served model name). Prints
// "N passed, N failed" and exits non-zero when any check failed.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.RLJ_TEACHER_BASE_URL;
const model = process.env.RLJ_TEACHER_MODEL ?? 'teacher';
if (!baseURL) {
  console.error('RLJ_TEACHER_BASE_URL is not set');
  process.exit(2);
}
// No retries: a failure must show at once, not after the client's backoff.
const client = new OpenAI({ baseURL, apiKey: 'unused-by-rlj-teacher', maxRetries: 0, timeout: 60_000 });

function checkTopLogprobs(entry, k, where) {
  assert.equal(typeof entry.token, 'string', `${where}: token`);
  assert.ok(entry.logprob <= 0, `${where}: logprob ${entry.logprob} <= 0`);
  assert.ok(Array.isArray(entry.bytes), `${where}: bytes`);
  for (const b of entry.bytes) assert.ok(Number.isInteger(b) && b >= 0 && b < 256, `${where}: byte ${b}`);
  assert.equal(entry.top_logprobs.length, k, `${where}: ${k} top_logprobs`);
  for (let i = 1; i < k; ++i) {
    assert.ok(entry.top_logprobs[i - 1].logprob >= entry.top_logprobs[i].logprob, `${where}: top_logprobs sorted`);
  }
}

const checks = [
  ['models.list names the served model', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids, [model]);
    const one = await client.models.retrieve(model);
    assert.equal(one.id, model);
    assert.equal(one.object, 'model');
  }],
  ['chat.completions.create with logprobs and top_logprobs', async () => {
    const completion = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: '12+34=' }],
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
      seed: 5,
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, model);
    assert.equal(completion.choices.length, 1);
    const choice = completion.choices[0];
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
    const content = choice.logprobs.content;
    // The end-of-sequence token that stops an answer counts as generated but carries no text.
    const eos = choice.finish_reason === 'stop' ? 1 : 0;
    assert.equal(content.length, completion.usage.completion_tokens - eos);
    assert.ok(content.length >= 1 && content.length <= 4);
    assert.ok(completion.usage.prompt_tokens > 0);
    assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);
    content.forEach((entry, i) => {
      checkTopLogprobs(entry, 3, `content[${i}]`);
      // Greedy decoding: the chosen token is the most likely one.
      assert.equal(entry.token, entry.top_logprobs[0].token, `content[${i}] is the argmax`);
      assert.equal(entry.logprob, entry.top_logprobs[0].logprob);
    });
  }],
  ['chat completions are reproducible at temperature 0', async () => {
    const ask = () => client.chat.completions.create({ model, messages: [{ role: 'user', content: '7+8=' }], max_tokens: 3, temperature: 0 });
    const [a, b] = await Promise.all([ask(), ask()]);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  }],
  ['completions.create with echo scores the prompt', async () => {
    const prompt = '12+34=46?';
    const completion = await client.completions.create({ model, prompt, max_tokens: 1, temperature: 0, echo: true, logprobs: 2 });
    assert.equal(completion.object, 'text_completion');
    const choice = completion.choices[0];
    assert.ok(choice.text.startsWith(prompt), 'echo returns the prompt first');
    const lp = choice.logprobs;
    const promptTokens = completion.usage.prompt_tokens;
    assert.equal(lp.tokens.length, promptTokens + 1, 'the prompt\'s tokens (with <bos>), then the new one');
    assert.equal(lp.tokens.join(''), choice.text);
    assert.equal(lp.tokens.slice(0, promptTokens).join(''), prompt);
    assert.equal(lp.token_logprobs[0], null, 'the first token has no logprob');
    assert.equal(lp.top_logprobs[0], null);
    let offset = 0;
    lp.tokens.forEach((token, i) => {
      assert.equal(lp.text_offset[i], offset, `text_offset[${i}]`);
      offset += token.length;
      if (i === 0) return;
      assert.ok(lp.token_logprobs[i] <= 0);
      // logprobs: 2 alternatives, plus the token itself when it is not among them.
      const alternatives = Object.keys(lp.top_logprobs[i]);
      assert.ok(alternatives.length === 2 || alternatives.length === 3, `top_logprobs[${i}]`);
      assert.equal(lp.top_logprobs[i][token], lp.token_logprobs[i], `top_logprobs[${i}] holds the token`);
    });
    assert.equal(completion.usage.completion_tokens, 1);
  }],
  ['streamed chat completion adds up to the whole answer', async () => {
    const params = { model, messages: [{ role: 'user', content: '3+4=' }], max_tokens: 4, temperature: 0 };
    const whole = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.choices.length > 0) text += chunk.choices[0].delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, whole.choices[0].message.content);
    assert.deepEqual(usage, whole.usage);
  }],
  ['errors arrive as the client\'s typed errors', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && typeof e.message === 'string');
    await assert.rejects(
      client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], temperature: -1 }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature');
  }],
];

let passed = 0;
let failed = 0;
for (const [name, check] of checks) {
  try {
    await check();
    ++passed;
    console.log(`ok - ${name}`);
  } catch (e) {
    ++failed;
    console.log(`not ok - ${name}: ${e?.stack ?? e}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
