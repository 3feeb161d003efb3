"""Azure OpenAI: the OpenAI chat-completions engine, talking to a deployment.

Only the client differs: ``openai.AsyncAzureOpenAI`` builds
``{base_url}/openai/deployments/{model}/chat/completions?api-version=...`` and sends the key as
``api-key``. The provider's ``model`` is the deployment name; ``options.api_version`` picks the
API version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import openai

from hark.engines.llm.openai_compat import OpenAICompatibleLLM
from hark.engines.provider_common import require_api_key
from hark.errors import ConfigError

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

KEY_ENV = "AZURE_OPENAI_API_KEY"
DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAILLM(OpenAICompatibleLLM):
    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> AzureOpenAILLM:
        label, endpoint, deployment = provider.label, provider.base_url, provider.model
        if endpoint is None:
            raise ConfigError(
                f"llm provider {label}: base_url is required for kind azure "
                "(the resource endpoint, e.g. https://my-resource.openai.azure.com)"
            )
        if deployment is None:
            raise ConfigError(f"llm provider {label}: model is required for kind azure (the deployment name)")
        api_key = require_api_key(provider, KEY_ENV, "llm")
        api_version = str(provider.options.get("api_version", DEFAULT_API_VERSION))
        # As for every OpenAI-compatible provider, the fallback chain decides about retries.
        client = openai.AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_key=api_key,
            api_version=api_version,
            max_retries=0,
            timeout=provider.timeout,
        )
        return cls(
            base_url=endpoint,
            api_key=api_key,
            model=deployment,
            timeout=provider.timeout,
            temperature=settings.llm.temperature,
            max_tokens=settings.llm.max_tokens,
            name=label,
            client=client,
        )
