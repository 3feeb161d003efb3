"""Embedded llama.cpp LLM engine (``llm.kind: llama-cpp``), via the optional ``llama-cpp-python``.

The GGUF is loaded once, in the constructor (the app builds engines off the event loop). Each
generation runs on a dedicated single-thread executor, because a ``llama_cpp.Llama`` is not
thread-safe: one generation at a time, later ones queue behind it. Tokens cross to the event loop
through an ``asyncio.Queue`` fed with ``loop.call_soon_threadsafe``.

When the consumer stops iterating (the generator is closed or its task cancelled, as on barge-in)
a ``threading.Event`` is set; the worker checks it between tokens and stops, so the executor is
free for the next turn almost at once. llama-cpp-python keeps the KV cache of the longest common
prompt prefix between calls, so a fixed system prompt stays warm without any help from here.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hark.config import LLMSettings, ProviderConfig, Settings
from hark.engines.base import ChatMessage, LLMChunk, LLMOptions
from hark.errors import EngineError, EngineUnavailable, MissingDependency

_SETTING = "llm.model_path (HARK_LLM_MODEL_PATH)"

# What the worker hands the event loop: a text delta, an exception from llama.cpp, or None (done).
_Item = str | BaseException | None


class LlamaCppLLM:
    """An in-process GGUF model run by llama.cpp; implements :class:`hark.engines.base.LLM`."""

    name = "llama-cpp"

    def __init__(self, settings: LLMSettings) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise MissingDependency("llama-cpp-python", "pip install 'hark[llama]'") from exc

        if settings.model_path is None:
            raise EngineUnavailable(
                f"no GGUF model configured: set {_SETTING} to a .gguf file", engine=self.name
            )
        path = Path(settings.model_path).expanduser()
        if not path.is_file():
            raise EngineUnavailable(
                f"GGUF model file {str(path)!r} does not exist or is not a file; check {_SETTING}",
                engine=self.name,
            )
        if not os.access(path, os.R_OK):
            raise EngineUnavailable(
                f"GGUF model file {str(path)!r} is not readable; check its permissions or {_SETTING}",
                engine=self.name,
            )

        self._settings = settings
        try:
            self._model: Any = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=settings.context_size,
                n_threads=settings.threads or None,
                verbose=False,
            )
        except Exception as exc:  # llama-cpp-python raises ValueError/RuntimeError on a bad file
            raise EngineUnavailable(
                f"llama.cpp could not load GGUF model {str(path)!r} (set by {_SETTING}): {exc}",
                engine=self.name,
            ) from exc

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hark-llama-cpp")
        self._active: set[threading.Event] = set()
        self._closed = False

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> LlamaCppLLM:
        update: dict[str, Any] = {"timeout": provider.timeout}
        if provider.model_path is not None:
            update["model_path"] = provider.model_path
        return cls(settings.llm.model_copy(update=update))

    async def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        """Stream the reply as non-empty text deltas.

        Raises ``EngineError(retryable=True)`` when no token arrives within ``llm.timeout``
        seconds (time spent waiting for another generation to finish counts), and ``EngineError``
        for any failure inside llama.cpp.
        """
        if self._closed:
            raise EngineUnavailable("the llama.cpp engine is closed", engine=self.name)

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        stop = threading.Event()
        # Tools and JSON schemas are not mapped for the embedded model; it answers in text.
        payload = [_plain(message) for message in messages]

        def emit(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        self._active.add(stop)
        self._executor.submit(self._generate, payload, stop, emit)
        timeout = self._settings.timeout
        try:
            try:
                async with asyncio.timeout(timeout):
                    item = await queue.get()
            except TimeoutError:
                raise EngineError(
                    f"llama.cpp produced no token within {timeout:g}s (llm.timeout)",
                    retryable=True,
                    engine=self.name,
                ) from None
            while item is not None:
                if isinstance(item, BaseException):
                    raise EngineError(
                        f"llama.cpp generation failed: {type(item).__name__}: {item}", engine=self.name
                    ) from item
                yield item
                item = await queue.get()
        finally:
            # Barge-in, timeout, error or normal end: the worker stops at its next token.
            stop.set()
            self._active.discard(stop)

    def _generate(
        self, messages: list[dict[str, str]], stop: threading.Event, emit: Callable[[_Item], None]
    ) -> None:
        """Run one generation on the executor thread, handing deltas to ``emit``."""
        try:
            if stop.is_set():  # abandoned while it waited for the previous generation
                return
            chunks = self._model.create_chat_completion(
                messages=messages,
                temperature=self._settings.temperature,
                max_tokens=self._settings.max_tokens,
                stream=True,
            )
            try:
                for chunk in chunks:
                    if stop.is_set():
                        break
                    choices = chunk.get("choices") or ()
                    content = choices[0].get("delta", {}).get("content") if choices else None
                    if content:
                        emit(content)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except Exception as exc:
            emit(exc)
        finally:
            emit(None)

    async def check(self) -> None:
        """The model lives in-process: it is available once loaded, until :meth:`aclose`."""
        if self._closed:
            raise EngineUnavailable("the llama.cpp engine is closed", engine=self.name)

    async def aclose(self) -> None:
        """Stop any generation, wait for the worker thread, and free the model."""
        if self._closed:
            return
        self._closed = True
        for stop in list(self._active):
            stop.set()
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        close = getattr(self._model, "close", None)
        if close is not None:
            close()


def _plain(message: ChatMessage) -> dict[str, str]:
    """A message as plain chat turns: many GGUF chat templates refuse a ``tool`` role or an
    empty assistant turn, so calls and their results (from tools offered to other providers of
    the chain, or items a client created) are told in words."""
    if message.role == "tool":
        return {"role": "user", "content": f"(tool result) {message.content}"}
    if message.tool_calls:
        calls = "; ".join(f"{c.name}({c.arguments})" for c in message.tool_calls)
        return {
            "role": "assistant",
            "content": " ".join(t for t in (message.content, f"(called {calls})") if t),
        }
    return {"role": message.role, "content": message.content}
