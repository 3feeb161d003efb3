"""One typed settings object, read once at start-up (:func:`load_settings`).

settings.py       the root ``Settings`` and where its values come from
loading.py        YAML files, then ``HARK_*`` environment variables
engines.py        VAD, the providers of each stage's fallback chain, what a stage's providers share
engine_options.py the local engines' own options (faster-whisper, Piper); the old flat keys
conversation.py   prompt, history, reply pacing, speculation, tools
meetings.py       recording, retention, diarisation, workflows
security.py       credentials, tenants, limits
server.py         HTTP, logs, worker processes, admission, the shared store
transports.py     Wyoming, Twilio and WebRTC
audio.py          microphone audio processing (echo cancellation)
"""

from hark.config.audio import AudioSettings
from hark.config.base import Section
from hark.config.conversation import DEFAULT_SYSTEM_PROMPT, ConversationSettings
from hark.config.engine_options import EngineOptions, FasterWhisperOptions, PiperOptions
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
    "EngineOptions",
    "FallbackSettings",
    "FasterWhisperOptions",
    "IceServer",
    "LLMSettings",
    "MeetingSettings",
    "ObservabilitySettings",
    "PiperOptions",
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
