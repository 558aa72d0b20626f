"""The OpenAI-compatible backend against a small HTTP server on 127.0.0.1 started by the test:
answers, retries with backoff, a failing query that does not sink the others, label scoring
through echoed log-probs, configuration from the environment."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import rankkit as rk
from rankkit.errors import ConfigError
from rankkit.llm.openai_compat import OpenAIBackend

CORPUS = rk.Corpus(["d1", "d2"], ["Fleming found penicillin in 1928.", "Light is fast."])
RUN = rk.Run({q: (["d1", "d2"], [2.0, 1.0]) for q in ("ok", "flaky", "down", "bad")})
QUERIES = rk.Queries({"ok": "who found penicillin?", "flaky": "FLAKY question",
                      "down": "DOWN question", "bad": "BAD question"})


class Endpoint:
    """Scripted server: FLAKY fails twice with 503, DOWN always 500, BAD is a 400."""

    def __init__(self):
        self.requests: list[tuple[str, dict, str | None]] = []
        self.flaky_failures = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append((self.path, body, self.headers.get("Authorization")))
                status, payload = outer.reply(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reply(self, path, body):
        text = json.dumps(body)
        if "DOWN" in text:
            return 500, {"error": "overloaded"}
        if "BAD" in text:
            return 400, {"error": "bad request"}
        if "FLAKY" in text:
            with self.lock:
                self.flaky_failures += 1
                if self.flaky_failures <= 2:
                    return 503, {"error": "try later"}
        if path == "/v1/chat/completions":
            user = body["messages"][-1]["content"]
            return 200, {"choices": [{"message": {"role": "assistant",
                                                  "content": f"Fleming [1] ({len(user)} chars)"}}],
                         "usage": {"completion_tokens": 5}}
        if path == "/v1/completions":
            # one token per character; the preferred label's characters cost 0.1, others 1.0
            prompt = body["prompt"]
            prefer = "CONTRADICT" if "penicillin" in prompt else "SUPPORT"
            cut = max(prompt.rfind(lab) for lab in ("SUPPORT", "CONTRADICT"))
            cost = 0.1 if prompt[cut:] == prefer else 1.0
            return 200, {"choices": [{"text": prompt, "logprobs": {
                "tokens": list(prompt), "text_offset": list(range(len(prompt))),
                "token_logprobs": [None] + [-cost] * (len(prompt) - 1)}}]}
        return 404, {"error": "no route"}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def endpoint():
    with Endpoint() as ep:
        yield ep


def make(endpoint, **kw):
    sleeps: list[float] = []
    be = OpenAIBackend("test-model", base_url=endpoint.url, api_key="sk-test", max_retries=3,
                       backoff=0.5, timeout=5, sleep=sleeps.append, **kw)
    return be, sleeps


def test_answers_retries_and_a_failed_query_keeps_the_others(endpoint):
    be, sleeps = make(endpoint)
    gen = rk.Generator("test-model", backend=be, corpus=CORPUS, k=2, show_progress=False)
    answers = gen(QUERIES, RUN).answers
    assert answers["ok"].text.startswith("Fleming [1]") and answers["ok"].citations == ["d1"]
    assert answers["ok"].error is None and answers["flaky"].error is None    # retried, then fine
    assert "failed after 4 attempts" in answers["down"].error and "HTTP 500" in answers["down"].error
    assert "HTTP 400" in answers["bad"].error and answers["bad"].text == ""
    per_query = {q: sum(text in json.dumps(b) for _, b, _ in endpoint.requests)
                 for q, text in QUERIES.items()}
    assert per_query == {"ok": 1, "flaky": 3, "down": 4, "bad": 1}            # bounded requests
    assert sorted(sleeps) == sorted([0.5, 1.0] + [0.5, 1.0, 2.0])            # exponential backoff
    assert gen.stats["errors"] == 2
    path, body, auth = endpoint.requests[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "test-model" and body["temperature"] == 0.0
    assert body["messages"][0]["role"] == "system" and "[1] Fleming" in body["messages"][-1]["content"]


def test_labels_scored_from_echoed_logprobs(endpoint):
    be, _ = make(endpoint)
    gen = rk.Generator("test-model", backend=be, corpus=CORPUS, mode="classify", k=1,
                       labels=["SUPPORT", "CONTRADICT"], show_progress=False)
    queries = rk.Queries({"ok": "who found penicillin?", "down": "DOWN claim"})
    answers = gen(queries, RUN).answers
    a = answers["ok"]
    assert a.label == "CONTRADICT"
    assert a.label_scores == pytest.approx({"SUPPORT": -7 * 1.0, "CONTRADICT": -10 * 0.1})
    assert answers["down"].label is None and "HTTP 500" in answers["down"].error
    completions = [b for p, b, _ in endpoint.requests if p == "/v1/completions"]
    assert all(b["echo"] is True and b["logprobs"] == 0 for b in completions)


def test_endpoint_down_is_a_clear_per_query_error():
    with socket.socket() as s:               # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    be = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.1,
                       timeout=2, sleep=sleeps.append)
    gen = rk.Generator("m", backend=be, corpus=CORPUS, show_progress=False)
    a = gen(rk.Queries({"q": "anything"}), RUN).answers["q"]
    assert "failed after 3 attempts" in a.error and "refused" in a.error.lower()
    assert sleeps == [0.1, 0.2]


def test_configuration_from_the_environment(endpoint, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("RANKKIT_OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="RANKKIT_OPENAI_BASE_URL"):
        rk.Generator("m", backend="openai")
    monkeypatch.setenv("RANKKIT_OPENAI_BASE_URL", endpoint.url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    gen = rk.Generator("m", backend="openai", corpus=CORPUS, show_progress=False, backoff=0)
    assert gen(rk.Queries({"q": "who?"}), RUN).answers["q"].text.startswith("Fleming")
    assert endpoint.requests[-1][2] == "Bearer sk-env"
    assert gen.describe()["base_url"] == endpoint.url
    with pytest.raises(ConfigError, match="bad option"):
        rk.Generator("m", backend="openai", no_such_option=1)
