#!/usr/bin/env python3
"""openai_client_test.py: the official OpenAI Python client (`openai`, pinned in tools/python-requirements.txt),
unchanged, against a real `rlj teacher` process serving tests/golden/tiny_byte_llama (a Hugging Face directory
with a byte-level tokenizer.json). The Python twin of tests/openai_client/client_test.mjs, plus the checks a
judge relies on: logprobs of a generated answer equal the logprobs of the same text scored with echo, streamed
text adds up to the whole answer (also across a multi-byte character), typed errors.

Usage: python3 tests/python/openai_client_test.py PATH/TO/rlj   (exit 77: skipped, the reason printed)
"""

import concurrent.futures
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rlj_test_util as util  # noqa: E402

openai = util.require("openai")

MODEL = "teacher"
CHECKPOINT = os.path.join(util.SOURCE_DIR, "tests", "golden", "tiny_byte_llama")


def check_entry(entry, k, where):
    """One chat logprobs entry (ChatCompletionTokenLogprob) with k alternatives."""
    assert isinstance(entry.token, str), where
    assert entry.logprob <= 0 and math.isfinite(entry.logprob), f"{where}: logprob {entry.logprob}"
    assert isinstance(entry.bytes, list) and all(isinstance(b, int) and 0 <= b < 256 for b in entry.bytes), where
    assert len(entry.top_logprobs) == k, f"{where}: {len(entry.top_logprobs)} top_logprobs, expected {k}"
    values = [t.logprob for t in entry.top_logprobs]
    assert values == sorted(values, reverse=True), f"{where}: top_logprobs not sorted: {values}"


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert ids == [MODEL], ids
    one = client.models.retrieve(MODEL)
    assert one.id == MODEL and one.object == "model", one
    try:
        client.models.retrieve("no-such-model")
    except openai.NotFoundError as e:
        assert e.status_code == 404, e.status_code
    else:
        raise AssertionError("retrieving an unknown model did not raise NotFoundError")


def test_chat_logprobs(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "12+34="}], max_tokens=6, temperature=0, logprobs=True,
        top_logprobs=3, seed=5)
    assert completion.object == "chat.completion", completion.object
    assert completion.model == MODEL
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length"), choice.finish_reason
    content = choice.logprobs.content
    # The end-of-sequence token that stops an answer counts as generated but carries no text.
    eos = 1 if choice.finish_reason == "stop" else 0
    usage = completion.usage
    assert len(content) == usage.completion_tokens - eos, (len(content), usage)
    assert 1 <= len(content) <= 6
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    for i, entry in enumerate(content):
        check_entry(entry, 3, f"content[{i}]")
        # Greedy decoding: the chosen token is the most likely one.
        assert entry.token == entry.top_logprobs[0].token, f"content[{i}] is not the argmax"
        assert entry.logprob == entry.top_logprobs[0].logprob
    # The tokens' bytes, joined, are the answer's UTF-8 (what a client reassembles multi-byte characters from).
    joined = b"".join(bytes(entry.bytes) for entry in content)
    assert joined.decode("utf-8", errors="replace") == choice.message.content, (joined, choice.message.content)


def test_chat_reproducible(client):
    def ask():
        return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "7+8="}],
                                              max_tokens=5, temperature=0).choices[0].message.content
    # Concurrent requests share batched forward passes in the teacher; greedy answers must not depend on that.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: ask(), range(4)))
    assert len(set(answers)) == 1, answers


def test_chat_sampling_n(client):
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "ab"}],
                                                max_tokens=4, temperature=1.0, n=3, seed=7)
    assert [c.index for c in completion.choices] == [0, 1, 2], [c.index for c in completion.choices]
    again = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "ab"}],
                                           max_tokens=4, temperature=1.0, n=3, seed=7)
    # Same seed, same samples.
    assert [c.message.content for c in completion.choices] == [c.message.content for c in again.choices]


def test_completions_echo(client):
    prompt = "12+34=46?"
    completion = client.completions.create(model=MODEL, prompt=prompt, max_tokens=1, temperature=0, echo=True,
                                           logprobs=2)
    assert completion.object == "text_completion", completion.object
    choice = completion.choices[0]
    assert choice.text.startswith(prompt), "echo returns the prompt first"
    lp = choice.logprobs
    prompt_tokens = completion.usage.prompt_tokens
    assert len(lp.tokens) == prompt_tokens + 1, "the prompt's tokens (with <bos>), then the new one"
    assert "".join(lp.tokens) == choice.text
    assert "".join(lp.tokens[:prompt_tokens]) == prompt
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None, "the first token has no logprob"
    offset = 0
    for i, token in enumerate(lp.tokens):
        assert lp.text_offset[i] == offset, f"text_offset[{i}] = {lp.text_offset[i]}, expected {offset}"
        offset += len(token)
        if i == 0:
            continue
        assert lp.token_logprobs[i] <= 0
        # logprobs=2 alternatives, plus the token itself when it is not among them. (The legacy format is a dict
        # keyed by token text: byte tokens that are not UTF-8 on their own all read U+FFFD and share one key.)
        alternatives = lp.top_logprobs[i]
        assert len(alternatives) in (2, 3) or (len(alternatives) == 1 and "\ufffd" in alternatives), alternatives
        assert lp.top_logprobs[i][token] == lp.token_logprobs[i], f"top_logprobs[{i}] lacks the token"
        assert max(lp.top_logprobs[i].values()) >= lp.token_logprobs[i]
    assert completion.usage.completion_tokens == 1


def test_token_id_prompts_for_distillation(client):
    """What a judge in distill mode does: several token-id prompts (a student's prompt and sampled tokens) in one
    request, echoed with logprobs; each choice, by its index, scores exactly those ids, as the same text does. The
    model object carries the tokenizer fingerprint the judge compares with the student's."""
    one = client.models.retrieve(MODEL)
    info = one.model_extra["rlj_tokenizer"]
    assert len(info["fingerprint"]) == 64 and int(info["fingerprint"], 16) >= 0, info
    texts = ["12+34=46", "7+8=15"]
    ids = [[256] + [ord(c) for c in text] for text in texts]  # <bos> and the bytes: the byte-level vocabulary
    batch = client.completions.create(model=MODEL, prompt=ids, max_tokens=1, temperature=0, echo=True, logprobs=1)
    assert len(batch.choices) == 2, batch.choices
    for choice in batch.choices:
        values = choice.logprobs.token_logprobs
        assert len(values) == len(ids[choice.index]) + 1, (choice.index, len(values))
        assert values[0] is None and all(v <= 0 for v in values[1:])
        scored = client.completions.create(model=MODEL, prompt=texts[choice.index], max_tokens=1, temperature=0,
                                           echo=True, logprobs=1)
        by_text = scored.choices[0].logprobs.token_logprobs
        for k in range(1, len(ids[choice.index])):
            assert abs(values[k] - by_text[k]) < 1e-5, (choice.index, k, values[k], by_text[k])


def test_generated_logprobs_equal_echo_scores(client):
    """What a judge in likelihood mode does: score a text with echo. The generator's own logprobs (KV cache,
    one token at a time) must equal the scores of one full pass over prompt + answer."""
    prompt = "12+34="
    generated = client.completions.create(model=MODEL, prompt=prompt, max_tokens=3, temperature=0, logprobs=1)
    lp = generated.choices[0].logprobs
    text = generated.choices[0].text
    assert "".join(lp.tokens) == text and len(lp.tokens) == 3, (lp.tokens, text)
    assert all(ord(c) < 128 for c in text), f"this check needs an ASCII answer, got {text!r}"
    scored = client.completions.create(model=MODEL, prompt=prompt + text, max_tokens=0, echo=True, logprobs=0)
    echo = scored.choices[0].logprobs
    assert scored.usage.completion_tokens == 0
    assert "".join(echo.tokens) == prompt + text
    assert echo.tokens[-3:] == lp.tokens, (echo.tokens, lp.tokens)
    for mine, theirs in zip(lp.token_logprobs, echo.token_logprobs[-3:]):
        assert abs(mine - theirs) < 1e-4, (lp.token_logprobs, echo.token_logprobs[-3:])


def test_completions_batch(client):
    prompts = ["12", "ab"]
    completion = client.completions.create(model=MODEL, prompt=prompts, max_tokens=3, temperature=0)
    assert sorted(c.index for c in completion.choices) == [0, 1]
    for c in completion.choices:
        alone = client.completions.create(model=MODEL, prompt=prompts[c.index], max_tokens=3, temperature=0)
        assert alone.choices[0].text == c.text, (prompts[c.index], alone.choices[0].text, c.text)


def test_chat_stream(client):
    # "12" answers greedily with a two-byte character split over two byte tokens: the stream must hold the first
    # byte back and send the character whole, so the deltas add up to the answer.
    for question in ("3+4=", "12"):
        params = dict(model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=16, temperature=0)
        whole = client.chat.completions.create(**params)
        stream = client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True})
        text, usage, finish, chunks, role = "", None, None, 0, None
        for chunk in stream:
            assert chunk.object == "chat.completion.chunk", chunk.object
            if chunk.choices:
                chunks += 1
                delta = chunk.choices[0].delta
                role = role or delta.role
                text += delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        assert role == "assistant", role
        assert text == whole.choices[0].message.content, (question, text, whole.choices[0].message.content)
        assert finish == whole.choices[0].finish_reason
        assert usage == whole.usage, (usage, whole.usage)
        assert chunks >= 2, f"{chunks} chunks"


def test_completions_stream(client):
    params = dict(model=MODEL, prompt="12", max_tokens=8, temperature=0)
    whole = client.completions.create(**params)
    text, usage, chunks = "", None, 0
    for chunk in client.completions.create(**params, stream=True, stream_options={"include_usage": True}):
        assert chunk.object == "text_completion", chunk.object
        for c in chunk.choices:
            chunks += 1
            text += c.text
        if chunk.usage:
            usage = chunk.usage
    assert text == whole.choices[0].text, (text, whole.choices[0].text)
    assert usage == whole.usage, (usage, whole.usage)
    print(f"# /v1/completions streamed {whole.usage.completion_tokens} tokens in {chunks} chunk(s)")


def test_errors(client):
    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    except openai.NotFoundError as e:
        assert e.status_code == 404
        assert "no-such-model" in e.message, e.message
        assert e.code == "model_not_found", e.code
    else:
        raise AssertionError("an unknown model did not raise NotFoundError")
    bad = [
        (dict(temperature=-1), "temperature"),
        (dict(top_logprobs=50, logprobs=True), "top_logprobs"),
        (dict(max_tokens=-1), "max_tokens"),
    ]
    for extra, param in bad:
        try:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], **extra)
        except openai.BadRequestError as e:
            assert e.status_code == 400
            assert e.param == param, (extra, e.param)
            assert e.type == "invalid_request_error", e.type
            assert param in e.message, e.message
        else:
            raise AssertionError(f"{extra} did not raise BadRequestError")
    try:
        client.completions.create(model=MODEL, prompt="12", max_tokens=100000)
    except openai.BadRequestError as e:
        assert "context length" in e.message, e.message
    else:
        raise AssertionError("a completion past the context did not raise BadRequestError")


def main():
    rlj = util.rlj_binary()
    checks = util.Checks()
    with util.scratch_dir("rlj-openai-py-") as run_dir:
        with util.rlj_teacher(rlj, CHECKPOINT, run_dir) as base_url:
            # No retries: a failure must show at once, not after the client's backoff.
            client = openai.OpenAI(base_url=base_url, api_key="unused-by-rlj-teacher", max_retries=0, timeout=60)
            for name, fn in [
                ("models.list and models.retrieve", test_models),
                ("chat.completions with logprobs and top_logprobs", test_chat_logprobs),
                ("concurrent greedy chat completions agree", test_chat_reproducible),
                ("chat.completions n=3 with a seed", test_chat_sampling_n),
                ("completions with echo score the prompt", test_completions_echo),
                ("generated logprobs equal echo scores", test_generated_logprobs_equal_echo_scores),
                ("completions with a list of prompts", test_completions_batch),
                ("token-id prompts scored as a distill judge asks", test_token_id_prompts_for_distillation),
                ("streamed chat adds up to the whole answer", test_chat_stream),
                ("streamed completion adds up to the whole answer", test_completions_stream),
                ("errors arrive as the client's typed errors", test_errors),
            ]:
                checks.run(name, fn, client)
    checks.finish()


if __name__ == "__main__":
    main()
