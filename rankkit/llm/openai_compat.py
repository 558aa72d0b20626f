"""Any OpenAI-compatible HTTP endpoint (OpenAI, vLLM/llama.cpp/TGI servers) as a backend.

The base URL and key come from arguments or the environment
(``RANKKIT_OPENAI_BASE_URL`` or ``OPENAI_BASE_URL``; ``RANKKIT_OPENAI_API_KEY``
or ``OPENAI_API_KEY``). Requests go out concurrently through the standard
library (no SDK needed). A failing request is retried with exponential backoff
(connection errors, timeouts, HTTP 408/409/429/5xx); when retries run out only
that query fails, with the reason in ``Answer.error``.

Answers use ``/chat/completions`` (the server applies the chat template).
Classification needs token log-probabilities of a given continuation, which
only ``/completions`` with ``echo`` offers (vLLM and llama.cpp servers, older
OpenAI models); the prompt is rendered as plain text there.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import ConfigError, RankkitError
from .backends import Backend, Generation, Messages, approx_tokens
from .loading import render_plain

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(RankkitError):
    """The endpoint failed for one request (after retries, or with a non-retryable error)."""


class OpenAIBackend(Backend):
    """Chat completions (answers) and echoed log-probs (labels) over HTTP."""

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 3, backoff: float = 1.0,
                 concurrency: int = 4, context_window: int | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        base = base_url or os.environ.get("RANKKIT_OPENAI_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        if not base:
            raise ConfigError("backend='openai' needs base_url= or RANKKIT_OPENAI_BASE_URL "
                              "(e.g. http://127.0.0.1:8000/v1 or https://api.openai.com/v1)")
        if max_retries < 0 or concurrency < 1 or timeout <= 0:
            raise ConfigError("openai backend: max_retries >= 0, concurrency >= 1, timeout > 0")
        self.model_name = str(model)
        self.base_url = base.rstrip("/")
        self.api_key = api_key or os.environ.get("RANKKIT_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.concurrency, self._window, self._sleep = concurrency, context_window, sleep

    # -------------------------------------------------------------------- text
    def render(self, messages: Messages) -> str:
        return render_plain(messages)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [approx_tokens(t) for t in texts]

    def truncate(self, text: str, n_tokens: int) -> str:
        return text[: max(0, n_tokens) * 4]

    def context_window(self) -> int | None:
        return self._window

    # -------------------------------------------------------------------- HTTP
    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST JSON with retries; raises :class:`EndpointError` once retries run out."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(payload).encode("utf-8")
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                body = e.read().decode("utf-8", "replace")[:200]
                last = f"HTTP {e.code}: {body}"
                if e.code not in RETRY_STATUS:
                    raise EndpointError(f"{url}: {last}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            except json.JSONDecodeError as e:
                last = f"invalid JSON in the response ({e})"
        raise EndpointError(f"{url} failed after {self.max_retries + 1} attempts; last error: {last}")

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any], progress: bool, desc: str) -> list[Any]:
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(tqdm(pool.map(fn, items), total=len(items), desc=desc,
                             disable=not progress, leave=False))

    # -------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], messages: Sequence[Messages], max_new_tokens: int,
                 batch_size: int, progress: bool = False, **kwargs: Any) -> list[Generation]:
        settings = {"temperature": 0.0, **kwargs}

        def one(msgs: Messages) -> Generation:
            try:
                body = self.post("chat/completions", {"model": self.model_name, "messages": msgs,
                                                      "max_tokens": max_new_tokens, **settings})
                text = body["choices"][0]["message"]["content"] or ""
                used = (body.get("usage") or {}).get("completion_tokens")
                return Generation(text=text, n_tokens=int(used) if used is not None else approx_tokens(text))
            except EndpointError as e:
                return Generation(text="", error=str(e))
            except (KeyError, IndexError, TypeError) as e:
                return Generation(text="", error=f"unexpected response from the endpoint ({e!r})")

        return self._map(one, list(messages), progress, "generate")

    def score_labels(self, prompts: Sequence[str], labels: Sequence[str], batch_size: int,
                     progress: bool = False) -> tuple[np.ndarray, list[str | None]]:
        def one(pair: tuple[str, str]) -> tuple[float, str | None]:
            prompt, label = pair
            try:
                body = self.post("completions", {"model": self.model_name, "prompt": prompt + label,
                                                 "max_tokens": 1, "echo": True, "logprobs": 0,
                                                 "temperature": 0.0})
                lp = body["choices"][0]["logprobs"]
                start, end = len(prompt), len(prompt) + len(label)
                picked = [v for off, v in zip(lp["text_offset"], lp["token_logprobs"])
                          if start <= off < end]
                if not picked or any(v is None for v in picked):
                    return float("nan"), "the endpoint returned no log-probs for the label tokens"
                return float(sum(picked)), None
            except EndpointError as e:
                return float("nan"), str(e)
            except (KeyError, IndexError, TypeError) as e:
                return float("nan"), ("the endpoint does not return echoed log-probs on /completions, "
                                      f"which classification needs ({e!r})")

        pairs = [(p, lab) for p in prompts for lab in labels]
        results = self._map(one, pairs, progress, "classify")
        scores = np.array([r[0] for r in results], dtype=np.float64).reshape(len(prompts), len(labels))
        errors: list[str | None] = []
        for i in range(len(prompts)):
            errs = [e for _, e in results[i * len(labels):(i + 1) * len(labels)] if e]
            errors.append(errs[0] if errs else None)
        return scores, errors

    def next_token_logprobs(self, prompts: Sequence[str], candidate_ids: Sequence[int],
                            batch_size: int, shared_prefix: str | None = None,
                            progress: bool = False) -> np.ndarray:
        raise ConfigError("the 'openai' backend cannot give next-token log-probs of chosen tokens "
                          "(an endpoint's top_logprobs cannot be restricted to candidates); use "
                          "backend='transformers' or backend='vllm'")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model_name, "base_url": self.base_url}
