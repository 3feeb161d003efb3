"""One typed settings object, read once at start-up (:func:`load_settings`).

settings.py      the root ``Settings`` and where its values come from
loading.py       YAML files, then ``HARK_*`` environment variables
engines.py       VAD, the providers of each stage's fallback chain, the local engines' options
conversation.py  prompt, history, reply pacing, speculation, tools
meetings.py      recording, retention, diarisation, workflows
security.py      credentials, tenants, limits
server.py        HTTP, logs, worker processes, admission, the shared store
transports.py    Wyoming, Twilio and WebRTC
audio.py         microphone audio processing (echo cancellation)
"""

from hark.config.audio import AudioSettings
from hark.config.base import Section
from hark.config.conversation import DEFAULT_SYSTEM_PROMPT, ConversationSettings
from hark.config.engines import (
    FallbackSettings,
    LLMSettings,
    ProviderConfig,
    STTSettings,
    TTSSettings,
    VADSettings,
)
from hark.config.loading import SYSTEM_CONFIG, load_settings
from hark.config.meetings import MeetingSettings, WorkflowConfig
from hark.config.security import APIKeyConfig, SecuritySettings
from hark.config.server import (
    AdmissionSettings,
    ObservabilitySettings,
    RedisSettings,
    ServerSettings,
    WorkerSettings,
)
from hark.config.settings import Settings
from hark.config.transports import IceServer, TwilioSettings, WebRTCSettings, WyomingSettings

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "SYSTEM_CONFIG",
    "APIKeyConfig",
    "AdmissionSettings",
    "AudioSettings",
    "ConversationSettings",
    "FallbackSettings",
    "IceServer",
    "LLMSettings",
    "MeetingSettings",
    "ObservabilitySettings",
    "ProviderConfig",
    "RedisSettings",
    "STTSettings",
    "Section",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "TTSSettings",
    "TwilioSettings",
    "VADSettings",
    "WebRTCSettings",
    "WorkerSettings",
    "WorkflowConfig",
    "WyomingSettings",
    "load_settings",
]
