"""The one typed settings object: every section, and where its values come from."""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hark.config.audio import AudioSettings
from hark.config.conversation import ConversationSettings
from hark.config.engines import FallbackSettings, LLMSettings, STTSettings, TTSSettings, VADSettings
from hark.config.meetings import MeetingSettings
from hark.config.security import SecuritySettings
from hark.config.server import (
    AdmissionSettings,
    ObservabilitySettings,
    RedisSettings,
    ServerSettings,
    WorkerSettings,
)
from hark.config.transports import TwilioSettings, WebRTCSettings, WyomingSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HARK_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    server: ServerSettings = ServerSettings()
    vad: VADSettings = VADSettings()
    stt: STTSettings = STTSettings()
    tts: TTSSettings = TTSSettings()
    llm: LLMSettings = LLMSettings()
    conversation: ConversationSettings = ConversationSettings()
    fallback: FallbackSettings = FallbackSettings()
    meetings: MeetingSettings = MeetingSettings()
    workers: WorkerSettings = WorkerSettings()
    admission: AdmissionSettings = AdmissionSettings()
    security: SecuritySettings = SecuritySettings()
    redis: RedisSettings = RedisSettings()
    wyoming: WyomingSettings = WyomingSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    twilio: TwilioSettings = TwilioSettings()
    webrtc: WebRTCSettings = WebRTCSettings()
    audio: AudioSettings = AudioSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, the file (passed as init kwargs) beats defaults.
        return (env_settings, init_settings)

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, with every secret replaced by ``***``."""
        return self.model_dump(mode="json")
