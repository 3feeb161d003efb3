"""What every engine built on the official ``openai`` SDK shares (the chat LLM, OpenAI STT and
TTS): its exceptions mapped onto hark's errors, and the free reachability check."""

from __future__ import annotations

import openai

from hark.engines.provider_common import status_error
from hark.errors import EngineError, EngineUnavailable


def classify(exc: Exception, where: str, engine: str) -> EngineError:
    """Map an openai SDK exception onto hark's retryable/final errors."""
    if isinstance(exc, openai.APITimeoutError):
        return EngineError(f"{where} timed out", retryable=True, engine=engine)
    if isinstance(exc, openai.APIConnectionError):
        return EngineUnavailable(f"cannot connect to {where}", engine=engine)
    if isinstance(exc, openai.APIStatusError):
        return status_error(exc.status_code, exc.response.headers.get("retry-after"), where, engine)
    return EngineError(f"{where} failed: {type(exc).__name__}", retryable=True, engine=engine)


async def check_models(client: openai.AsyncOpenAI, budget: float, where: str, engine: str) -> None:
    """GET /models: free and authenticated, so it proves reachability and the key without a paid
    request. A server without /models (some compatible ones) is reachable, which is what counts."""
    try:
        await client.models.list(timeout=min(3.0, budget))
    except openai.NotFoundError:
        return
    except openai.OpenAIError as exc:
        raise classify(exc, where, engine) from exc
