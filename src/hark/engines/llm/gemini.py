"""Google's Gemini API (``streamGenerateContent``), through the official ``google-genai`` SDK.

System messages go to ``system_instruction``; tools become function declarations (their JSON
schema passed as is); ``functionCall`` parts become ``ToolCall``s and tool results go back as
``functionResponse`` parts; ``json_schema`` becomes ``response_mime_type`` + ``response_json_schema``.
The SDK is handed hark's own httpx client, so the transport (and the errors it raises) is the same
whether or not aiohttp happens to be installed, and the base URL can point at a loopback stand-in.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from hark.engines.base import ChatMessage, LLMChunk, LLMOptions, ToolCall
from hark.engines.provider_common import (
    Deadlines,
    api_key,
    llm_model,
    merged_turns,
    require_sdk,
    retryable_status,
    sdk_error,
    system_prompt,
    tool_arguments,
    unfinished,
)
from hark.errors import ConfigError, EngineError, parse_retry_after

try:
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types
except ImportError as exc:  # The optional extra is missing; the constructor says how to install it.
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
_REMEMBERED_CALLS = 256


def classify(exc: Exception, where: str, engine: str) -> EngineError:
    """Map SDK and transport exceptions onto hark's retryable/final errors."""
    if isinstance(exc, genai_errors.APIError):
        status = exc.code or 500
        headers = getattr(exc.response, "headers", None) or {}
        return EngineError(
            f"{where} answered HTTP {status} {exc.status or ''}".rstrip(),
            retryable=retryable_status(status),
            engine=engine,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
    # A ValueError is undecodable JSON, or JSON that is not a response.
    return sdk_error(
        exc,
        where,
        engine,
        timeout=httpx.TimeoutException,
        unreachable=httpx.ConnectError,
        broken=httpx.TransportError,
    )


def _tool_config(options: LLMOptions) -> types.ToolConfig:
    """The portable tool choice as Gemini's function-calling mode (a name: that one, forced)."""
    Mode = types.FunctionCallingConfigMode
    if options.tool_choice in ("none", "required"):
        mode = Mode.NONE if options.tool_choice == "none" else Mode.ANY
        return types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode=mode))
    return types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(
            mode=Mode.ANY, allowed_function_names=[options.tool_choice]
        )
    )


@dataclass(frozen=True, slots=True)
class _Call:
    """What Gemini said about a call that hark's ToolCall has no field for."""

    native_id: bool
    """Gemini gave the id (so it is sent back); otherwise hark made it up and keeps it to itself."""
    signature: bytes | None
    """The thought signature, which Gemini 3 requires back on its function calls."""


class GeminiLLM:
    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        total_timeout: float = 120.0,
        temperature: float = 0.7,
        max_tokens: int = 400,
        name: str = "gemini",
    ) -> None:
        require_sdk(_IMPORT_ERROR, "google-genai", "pip install 'hark[gemini]'")
        self.name = name
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._calls: OrderedDict[str, _Call] = OrderedDict()
        self._http = httpx.AsyncClient(timeout=timeout)
        # One attempt (the fallback chain decides about retries); the SDK hands the timeout, in
        # milliseconds, to every request, where it bounds connecting, the first byte and each gap.
        self._client = genai.Client(
            api_key=api_key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=base_url,
                timeout=max(1, round(timeout * 1000)),
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_async_client=self._http,
            ),
        )

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> GeminiLLM:
        require_sdk(_IMPORT_ERROR, "google-genai", "pip install 'hark[gemini]'")
        key, env = api_key(provider, next((e for e in KEY_ENVS if os.environ.get(e)), None))
        if not key:
            wanted = env or " or ".join(KEY_ENVS)
            raise ConfigError(f"llm provider {provider.label}: no API key; set {wanted} (or api_key)")
        return cls(
            api_key=key,
            model=llm_model(provider, settings, "gemini-2.5-flash"),
            base_url=provider.base_url or DEFAULT_BASE_URL,
            timeout=provider.timeout,
            total_timeout=provider.total_timeout,
            temperature=settings.llm.temperature,
            max_tokens=settings.llm.max_tokens,
            name=provider.label,
        )

    @property
    def where(self) -> str:
        return f"Gemini at {self.base_url}"

    def contents(self, messages: Sequence[ChatMessage]) -> list[types.Content]:
        """Turns as parts, consecutive turns of one role merged (see ``merged_turns``)."""
        names = {c.id: c.name for m in messages for c in m.tool_calls}

        def parts(m: ChatMessage) -> list[types.Part]:
            if m.role != "tool":
                text = [types.Part(text=m.content)] if m.content else []
                return text + [self._call_part(c) for c in m.tool_calls]
            result = _json_value(m.content)
            response = types.FunctionResponse(
                id=self._sent_id(m.tool_call_id or ""),
                name=names.get(m.tool_call_id or "", ""),
                response=result if isinstance(result, dict) else {"output": result},
            )
            return [types.Part(function_response=response)]

        return [types.Content(role=role, parts=p) for role, p in merged_turns(messages, parts, "model")]

    def _sent_id(self, call_id: str) -> str | None:
        """Ids Gemini gave (or another provider did) go back; ids hark made up stay with hark."""
        known = self._calls.get(call_id)
        return call_id if call_id and (known is None or known.native_id) else None

    def _call_part(self, call: ToolCall) -> types.Part:
        known = self._calls.get(call.id)
        function_call = types.FunctionCall(
            id=self._sent_id(call.id), name=call.name, args=tool_arguments(call.arguments)
        )
        return types.Part(function_call=function_call, thought_signature=known.signature if known else None)

    def _remember(self, part: types.Part) -> ToolCall:
        call = part.function_call
        assert call is not None
        call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"
        self._calls[call_id] = _Call(native_id=bool(call.id), signature=part.thought_signature)
        while len(self._calls) > _REMEMBERED_CALLS:
            self._calls.popitem(last=False)
        return ToolCall(id=call_id, name=call.name or "", arguments=json.dumps(call.args or {}))

    def config(self, messages: Sequence[ChatMessage], options: LLMOptions) -> types.GenerateContentConfig:
        system = system_prompt(messages)
        declarations = [
            types.FunctionDeclaration(
                name=t.name, description=t.description, parameters_json_schema=t.parameters
            )
            for t in options.tools
        ]
        return types.GenerateContentConfig(
            system_instruction=system or None,
            temperature=self.temperature if options.temperature is None else options.temperature,
            max_output_tokens=options.max_tokens or self.max_tokens,
            tools=[types.Tool(function_declarations=declarations)] if declarations else None,
            tool_config=_tool_config(options) if declarations and options.tool_choice != "auto" else None,
            # hark runs the tools itself: the SDK must never call anything on its own.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            # Nor reconnect behind hark's back: one request is one attempt.
            automatic_continuation=False,
            response_mime_type="application/json" if options.json_schema is not None else None,
            response_json_schema=options.json_schema,
        )

    async def stream(
        self, messages: Sequence[ChatMessage], options: LLMOptions | None = None
    ) -> AsyncIterator[LLMChunk]:
        options = options or LLMOptions()
        contents, config = self.contents(messages), self.config(messages, options)
        # total_timeout bounds the whole attempt, so a stream that trickles cannot run on forever.
        deadlines = Deadlines.total(self.total_timeout)
        finished, response = False, None
        try:
            async with deadlines.wait():
                response = await self._client.aio.models.generate_content_stream(
                    model=self.model, contents=contents, config=config
                )
            async for chunk in deadlines.each(response):
                for candidate in (chunk.candidates or [])[:1]:
                    finished = finished or candidate.finish_reason is not None
                    for part in (candidate.content.parts if candidate.content else None) or []:
                        if part.function_call is not None:
                            yield self._remember(part)
                        elif part.text and not part.thought:  # Thought summaries are not the reply.
                            yield part.text
            if not finished:
                raise EngineError(f"{self.where} ended the stream early", retryable=True, engine=self.name)
        except TimeoutError as exc:
            raise unfinished(self.where, self.total_timeout, self.name) from exc
        except (genai_errors.APIError, httpx.HTTPError, ValueError) as exc:
            raise classify(exc, self.where, self.name) from exc
        finally:  # Let go of the connection now when the caller stops early (a barge-in).
            if (close := getattr(response, "aclose", None)) is not None:
                await close()

    async def check(self) -> None:
        quick = types.HttpOptions(timeout=max(1, round(min(3.0, self.timeout) * 1000)))
        try:
            await self._client.aio.models.get(
                model=self.model, config=types.GetModelConfig(http_options=quick)
            )
        except genai_errors.ClientError as exc:
            if exc.code != 404:  # An unknown model still means the API is reachable.
                raise classify(exc, self.where, self.name) from exc
        except (genai_errors.APIError, httpx.HTTPError, ValueError) as exc:
            raise classify(exc, self.where, self.name) from exc

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()
        await self._http.aclose()


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
