"""`vkae-engine serve` end to end on the CPU path: the official `openai` client for completions, chat and
streaming; raw HTTP for every bad input, the queue limit and a client that disconnects mid-stream; continuous
batching giving exactly the sequential greedy outputs."""
import http.client
import json
import os
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import jinja2.ext
import openai
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from conftest import API_KEY, CHAT_TEMPLATE, CONTEXT, ROOT, write_recipe

MODEL = "tiny-e"


def client(server, key=API_KEY):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def token_ids(choice):
    return choice.model_extra["token_ids"]


def raw(server, method, path, body=None, headers=None, key=API_KEY):
    """One HTTP request; returns (status, headers, parsed JSON or text)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = f"Bearer {key}"
    h.update(headers or {})
    data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    try:
        return r.status, dict(r.getheaders()), json.loads(text)
    except json.JSONDecodeError:
        return r.status, dict(r.getheaders()), text


def metrics(server):
    status, _, text = raw(server, "GET", "/metrics", key=None)
    assert status == 200
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def settled_metrics(server):
    """Metrics once no request holds a slot (a request cut by a stop sequence may run one more step)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        m = metrics(server)
        if m["vkae_requests_running"] == 0 and m["vkae_requests_waiting"] == 0:
            return m
        time.sleep(0.02)
    pytest.fail(f"requests still running: {m}")


def tokenizer(server):
    return Tokenizer.from_file(str(server.model_dir / "tokenizer.json"))


def complete_ids(server, prompt, n, **kw):
    r = client(server).completions.create(model=MODEL, prompt=prompt, max_tokens=n, temperature=0,
                                          extra_body={"ignore_eos": True}, **kw)
    return r


# --- the openai client ---------------------------------------------------------------------------------------

def test_models_health_and_metrics_are_served(server):
    models = client(server).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].model_extra["max_model_len"] == CONTEXT
    assert models.data[0].model_extra["recipe"]["name"] == "test-cpu"
    assert len(models.data[0].model_extra["recipe"]["sha256"]) == 64
    status, _, body = raw(server, "GET", "/health", key=None)
    assert (status, body) == (200, {"status": "ok"})
    m = metrics(server)
    for name in ("vkae_requests_running", "vkae_requests_waiting", "vkae_batch_slots", "vkae_kv_blocks_total",
                 "vkae_time_to_first_token_seconds_count", "vkae_time_per_output_token_seconds_count"):
        assert name in m, name
    assert m["vkae_batch_slots"] == 16


def test_a_text_completion_counts_its_tokens_exactly(server):
    prompt = "the quick brown fox"
    r = client(server).completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0)
    c = r.choices[0]
    want_prompt = tokenizer(server).encode(prompt).ids
    assert want_prompt[0] == 2  # BOS, as transformers adds it
    assert r.usage.prompt_tokens == len(want_prompt)
    assert r.usage.completion_tokens == len(token_ids(c))
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert c.finish_reason in ("stop", "length")
    if c.finish_reason == "length":
        assert len(token_ids(c)) == 12
    else:
        assert token_ids(c)[-1] in (1, 5)  # <eos> or <end_of_turn>
    full = tokenizer(server).decode(token_ids(c), skip_special_tokens=True)
    if "\ufffd" not in full:
        assert c.text == full
    assert r.model == MODEL and r.object == "text_completion" and r.id.startswith("cmpl-")


def test_greedy_tokens_equal_the_engines_generate(server):
    prompt = [2, 40, 41, 300, 7, 9, 120]
    r = complete_ids(server, prompt, 24)
    out = subprocess.run(
        [server.proc.args[0], "generate", str(server.model_dir), "--prompt-ids", ",".join(map(str, prompt)),
         "--max-new", "24", "--warmup", "0", "--json"], capture_output=True, text=True, check=True)
    assert token_ids(r.choices[0]) == json.loads(out.stdout)["tokens"][0]
    assert r.choices[0].finish_reason == "length"


def render_chat(messages):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    return env.from_string(CHAT_TEMPLATE).render(messages=messages, add_generation_prompt=True, bos_token="<bos>",
                                                 eos_token="<end_of_turn>")


def test_chat_uses_the_models_template(server):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": " hello café "}]
    r = client(server).chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0)
    want = tokenizer(server).encode(render_chat(messages), add_special_tokens=False).ids
    assert want.count(2) == 1 and want[0] == 2  # the template's BOS only
    assert r.usage.prompt_tokens == len(want)
    assert 1 <= r.usage.completion_tokens <= 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")


def test_streamed_completion_adds_up_to_the_whole_one(server):
    kw = dict(model=MODEL, prompt="a model streams text", max_tokens=40, temperature=0,
              extra_body={"ignore_eos": True})
    whole = client(server).completions.create(**kw)
    chunks = list(client(server).completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    streamed_ids = [i for c in chunks if c.choices for i in c.choices[0].model_extra["token_ids"]]
    assert streamed_ids == token_ids(whole.choices[0])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 40
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_streamed_chat_adds_up_and_ends_with_done(server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "stream please"}], "max_tokens": 30,
            "temperature": 0, "ignore_eos": True}
    whole = client(server).chat.completions.create(**{k: v for k, v in body.items() if k != "ignore_eos"},
                                                   extra_body={"ignore_eos": True})
    chunks = list(client(server).chat.completions.create(
        stream=True, **{k: v for k, v in body.items() if k != "ignore_eos"}, extra_body={"ignore_eos": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"
    # The raw stream: SSE data lines, the last one [DONE].
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({**body, "stream": True}),
                 headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-type").startswith("text/event-stream")
    data = [line[6:] for line in r.read().decode().splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert all(json.loads(d)["object"] == "chat.completion.chunk" for d in data[:-1])


def test_a_seed_reproduces_a_sampled_completion(server):
    def sample(seed):
        r = client(server).completions.create(model=MODEL, prompt=[2, 50, 51, 52], max_tokens=24, temperature=1.0,
                                              top_p=0.95, seed=seed, extra_body={"ignore_eos": True})
        return token_ids(r.choices[0])
    assert sample(5) == sample(5)
    assert sample(5) != sample(6)
    greedy = token_ids(complete_ids(server, [2, 50, 51, 52], 24).choices[0])
    assert sample(5) != greedy


def test_a_stop_sequence_cuts_the_text(server):
    base = client(server).completions.create(model=MODEL, prompt="the lazy dog", max_tokens=40, temperature=0,
                                             extra_body={"ignore_eos": True}).choices[0]
    text = base.text
    # A stop sequence taken from the middle of the greedy text: the answer ends just before it.
    visible = [m.start() for m in re.finditer(r"\S\S", text)]
    assert len(visible) > 2, f"the greedy text has too little text to cut: {text!r}"
    at = visible[len(visible) // 2]
    stop = text[at:at + 2]
    cut = client(server).completions.create(model=MODEL, prompt="the lazy dog", max_tokens=40, temperature=0,
                                            stop=[stop], extra_body={"ignore_eos": True}).choices[0]
    assert cut.finish_reason == "stop"
    assert cut.text == text[:text.index(stop)]
    streamed = client(server).completions.create(model=MODEL, prompt="the lazy dog", max_tokens=40, temperature=0,
                                                 stop=stop, stream=True, extra_body={"ignore_eos": True})
    parts = list(streamed)
    assert "".join(p.choices[0].text for p in parts) == cut.text
    assert parts[-1].choices[0].finish_reason == "stop"


# --- continuous batching -------------------------------------------------------------------------------------

def prompts16():
    return [[2] + [(37 * i + 11 * j) % 500 + 6 for j in range(3 + (i * 7) % 29)] for i in range(16)]


def test_sixteen_concurrent_requests_give_the_sequential_greedy_outputs(server):
    prompts = prompts16()
    lengths = [8 + (i * 5) % 17 for i in range(16)]
    before = settled_metrics(server)
    alone = [complete_ids(server, p, n) for p, n in zip(prompts, lengths)]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda pn: complete_ids(server, *pn), zip(prompts, lengths)))
    after = settled_metrics(server)
    for i, (a, t) in enumerate(zip(alone, together)):
        assert token_ids(t.choices[0]) == token_ids(a.choices[0]), f"request {i}"
        assert len(token_ids(a.choices[0])) == lengths[i]
        assert t.usage.prompt_tokens == a.usage.prompt_tokens == len(prompts[i])
        assert t.usage.completion_tokens == lengths[i]
    # Usage adds up to what the server counted, and the concurrent run shared decode steps.
    generated = 2 * sum(lengths)
    assert after["vkae_generation_tokens_total"] - before["vkae_generation_tokens_total"] == generated
    assert after["vkae_prompt_tokens_total"] - before["vkae_prompt_tokens_total"] == 2 * sum(map(len, prompts))
    multi_row_steps = (after["vkae_batch_occupancy_rows_count"] - after['vkae_batch_occupancy_rows_bucket{le="1"}']) \
        - (before["vkae_batch_occupancy_rows_count"] - before['vkae_batch_occupancy_rows_bucket{le="1"}'])
    assert multi_row_steps > 0, "no decode step ran more than one request"
    assert after['vkae_requests_total{outcome="length"}'] - before['vkae_requests_total{outcome="length"}'] == 32


def test_a_full_queue_answers_429_with_retry_after(narrow_server):
    """One slot and a queue of one: of many requests sent at once, some are refused, the rest complete."""
    body = {"model": MODEL, "prompt": [2, 10, 11], "max_tokens": 1500, "temperature": 0, "ignore_eos": True}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: raw(narrow_server, "POST", "/v1/completions", body, key=None), range(8)))
    refused = [r for r in results if r[0] == 429]
    done = [r for r in results if r[0] == 200]
    assert refused, [r[0] for r in results]
    assert len(refused) + len(done) == 8
    for _, headers, err in refused:
        assert headers.get("retry-after") == "1"
        assert err["error"]["type"] == "rate_limit_error" and err["error"]["code"] == "queue_full"
    for _, _, ok in done:
        assert ok["usage"]["completion_tokens"] == 1500
        assert ok["choices"][0]["token_ids"] == done[0][2]["choices"][0]["token_ids"]


def test_a_client_that_disconnects_frees_its_slot(server):
    before = settled_metrics(server)
    body = json.dumps({"model": MODEL, "prompt": [2, 20, 21], "max_tokens": 4000, "temperature": 0,
                       "stream": True, "ignore_eos": True}).encode()
    s = socket.create_connection((server.host, server.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              + f"Authorization: Bearer {API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while b"data: " not in got:
        got += s.recv(4096)
    assert got.startswith(b"HTTP/1.1 200")
    s.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        m = metrics(server)
        cancelled = m['vkae_requests_total{outcome="cancelled"}'] - before['vkae_requests_total{outcome="cancelled"}']
        if m["vkae_requests_running"] == 0 and cancelled == 1:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the slot was not freed: {m}")
    generated = m["vkae_generation_tokens_total"] - before["vkae_generation_tokens_total"]
    assert generated < 4000, "the request ran to the end after its client left"
    assert m["vkae_kv_blocks_used"] == 0
    # The server still answers.
    assert len(token_ids(complete_ids(server, [2, 5, 6], 3).choices[0])) == 3


# --- bad input, by raw HTTP ----------------------------------------------------------------------------------

def check_error(result, status, param=None, code=None):
    got_status, headers, body = result
    assert got_status == status, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert err["message"]
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


GOOD = {"model": MODEL, "prompt": [2, 3, 4], "max_tokens": 2, "temperature": 0}


@pytest.mark.parametrize("body,param,needle", [
    (b"{not json", None, "not valid JSON"),
    (b"", None, "not valid JSON"),
    ({**GOOD, "max_tokens": "x"}, "max_tokens", "invalid type"),
    ({**GOOD, "temperature": "hot"}, "temperature", "invalid type"),
    ({**GOOD, "stream": 1}, "stream", "invalid type"),
    ({**GOOD, "surprise": True}, "surprise", "unknown field"),
    ({**GOOD, "stream_options": {"include_usage": True, "x": 1}}, "stream_options.x", "unknown field"),
    ({k: v for k, v in GOOD.items() if k != "prompt"}, None, "missing field `prompt`"),
    ({**GOOD, "max_tokens": 0}, "max_tokens", "at least 1"),
    ({**GOOD, "max_tokens": CONTEXT}, "max_tokens", "exceed the context"),
    ({**GOOD, "prompt": [2] * (CONTEXT + 1)}, "prompt", "no room in the context"),
    ({**GOOD, "prompt": [2, 999999]}, "prompt", "outside the vocabulary"),
    ({**GOOD, "prompt": []}, "prompt", "empty"),
    ({**GOOD, "prompt": {"text": "x"}}, "prompt", "expected a string or an array"),
    ({**GOOD, "n": 2}, "n", "n = 1"),
    ({**GOOD, "temperature": 3}, "temperature", "between 0 and 2"),
    ({**GOOD, "top_p": 0}, "top_p", "(0, 1]"),
    ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ({**GOOD, "logprobs": 2}, "logprobs", "not supported"),
])
def test_bad_completion_requests_get_400(server, body, param, needle):
    err = check_error(raw(server, "POST", "/v1/completions", body), 400, param=param)
    assert err["type"] == "invalid_request_error"
    assert needle in err["message"], err


@pytest.mark.parametrize("body,param,needle", [
    ({"model": MODEL, "messages": []}, "messages", "must not be empty"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "expected system"),
    ({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "string or an array"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x", "mood": "ok"}]}, "messages[0].mood",
     "unknown field"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "tools": []}, "tools", "unknown field"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0}, "max_tokens",
     "at least 1"),
])
def test_bad_chat_requests_get_400(server, body, param, needle):
    err = check_error(raw(server, "POST", "/v1/chat/completions", body), 400, param=param)
    assert needle in err["message"], err


def test_a_missing_or_wrong_key_gets_401(server):
    check_error(raw(server, "POST", "/v1/completions", GOOD, key=None), 401, code="invalid_api_key")
    check_error(raw(server, "POST", "/v1/completions", GOOD, key="wrong-key-0123456789"), 401,
                code="invalid_api_key")
    check_error(raw(server, "GET", "/v1/models", key=None), 401)
    with pytest.raises(openai.AuthenticationError):
        client(server, key="nope-nope-nope").models.list()
    assert raw(server, "POST", "/v1/completions", GOOD)[0] == 200


def test_unknown_models_and_routes_get_404(server):
    check_error(raw(server, "POST", "/v1/completions", {**GOOD, "model": "gpt-4"}), 404, param="model",
                code="model_not_found")
    with pytest.raises(openai.NotFoundError):
        client(server).completions.create(model="other", prompt=[2], max_tokens=1)
    check_error(raw(server, "GET", "/v1/nothing-here"), 404, code="not_found")
    check_error(raw(server, "POST", "/v2/completions", GOOD), 404)
    assert raw(server, "GET", "/v1/completions")[0] == 405


def test_an_oversized_body_gets_413(server):
    big = json.dumps({**GOOD, "prompt": "a" * 70000})
    check_error(raw(server, "POST", "/v1/completions", big), 413, code="request_too_large")


def test_a_model_without_a_tokenizer_serves_ids_and_says_so_for_text(ids_only_server):
    c = openai.OpenAI(base_url=ids_only_server.url + "/v1", api_key="unused", max_retries=0)
    r = c.completions.create(model="dense_style", prompt=[2, 30, 31], max_tokens=5, temperature=0,
                             extra_body={"ignore_eos": True})
    assert len(token_ids(r.choices[0])) == 5 and r.choices[0].text == ""
    chunks = list(c.completions.create(model="dense_style", prompt=[2, 30, 31], max_tokens=5, temperature=0,
                                       stream=True, extra_body={"ignore_eos": True}))
    assert [i for ch in chunks for i in ch.choices[0].model_extra["token_ids"]] == token_ids(r.choices[0])
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="dense_style", prompt="some text", max_tokens=2)
    assert "no tokenizer" in str(e.value) and "token ids" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="dense_style", messages=[{"role": "user", "content": "hi"}])
    assert "no tokenizer" in str(e.value)


def test_a_public_bind_needs_a_key(model_dir, tmp_path):
    recipe = tmp_path / "r.toml"
    write_recipe(recipe, 1, 1)
    exe = os.environ.get("VKAE_ENGINE_BIN") or str(ROOT / "target" / "debug" / "vkae-engine")
    out = subprocess.run([exe, "serve", str(model_dir), "--recipe", str(recipe), "--bind", "0.0.0.0:0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "--api-key" in out.stderr and "other machines" in out.stderr, out.stderr
