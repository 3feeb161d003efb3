"""eSpeak NG: a robotic but model-free local fallback, run as a subprocess that writes WAV."""

from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from hark.engines.base import TTSCapabilities
from hark.engines.provider_common import Deadlines, whole_samples
from hark.errors import ConfigError, EngineError, EngineUnavailable

if TYPE_CHECKING:
    from hark.config import ProviderConfig, Settings

INSTALL = "apt-get install espeak-ng"
SAMPLE_RATE = 22050
"""What espeak-ng's own voices produce; MBROLA voices need options.sample_rate (16000)."""


def parse_wav_header(data: bytes) -> tuple[int, int] | None:
    """(sample rate, offset of the PCM) of a streamed WAV, or None until enough has arrived.

    espeak-ng cannot seek back into a pipe, so the size fields are placeholders: everything after
    the ``data`` chunk header is audio until the stream ends."""
    if len(data) >= 12 and (data[:4] != b"RIFF" or data[8:12] != b"WAVE"):
        raise ValueError("not a WAV stream")
    offset, rate = 12, None
    while len(data) >= offset + 8:
        chunk, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if chunk == b"data":
            if rate is None:
                raise ValueError("WAV data before its fmt chunk")
            return rate, offset + 8
        if len(data) < offset + 8 + size:
            return None
        if chunk == b"fmt ":
            encoding, channels, rate = struct.unpack_from("<HHI", data, offset + 8)
            bits = struct.unpack_from("<H", data, offset + 22)[0]
            if (encoding, channels, bits) != (1, 1, 16):
                raise ValueError(f"WAV is not mono PCM16 (format {encoding}, {channels} ch, {bits} bit)")
        offset += 8 + size + size % 2
    return None


class EspeakTTS:
    capabilities = TTSCapabilities(streaming=True)  # Audio is forwarded as espeak-ng writes it.

    def __init__(
        self,
        *,
        binary: str = "espeak-ng",
        voice: str = "en-us",
        speed: int | None = None,
        sample_rate: int = SAMPLE_RATE,
        timeout: float = 5.0,
        total_timeout: float = 120.0,
        name: str = "espeak",
    ) -> None:
        self.name, self.binary, self.voice, self.speed = name, binary, voice, speed
        self.sample_rate, self.timeout, self.total_timeout = sample_rate, timeout, total_timeout

    @classmethod
    def from_config(cls, provider: ProviderConfig, settings: Settings) -> EspeakTTS:
        speed = provider.options.get("speed")
        if speed is not None and not (isinstance(speed, int) and 80 <= speed <= 500):
            raise ConfigError(f"tts provider {provider.label}: options.speed must be 80-500 words a minute")
        return cls(
            binary=str(provider.options.get("binary", "espeak-ng")),
            voice=provider.voice or "en-us",
            speed=speed,
            sample_rate=int(provider.options.get("sample_rate", SAMPLE_RATE)),
            timeout=provider.timeout,
            total_timeout=provider.total_timeout,
            name=provider.label,
        )

    def _executable(self) -> str:
        path = shutil.which(self.binary)
        if path is None:
            raise EngineUnavailable(
                f"{self.binary} is not installed; install it with: {INSTALL}", engine=self.name
            )
        return path

    async def check(self) -> None:
        self._executable()

    @staticmethod
    async def _reads(stdout: asyncio.StreamReader) -> AsyncIterator[bytes]:
        while chunk := await stdout.read(8192):
            yield chunk

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        args = ["--stdout", "-v", self.voice, *(["-s", str(self.speed)] if self.speed else [])]
        # No shell; "--" ends the options, so a text such as "-v xx" is spoken, not obeyed.
        # A NUL cannot travel in an argument, and is silence anyway.
        args += ["--", text.replace("\0", " ")]
        deadlines = Deadlines(self.timeout, self.total_timeout)
        try:
            process = await asyncio.create_subprocess_exec(
                self._executable(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise EngineUnavailable(f"cannot run {self.binary}: {exc}; {INSTALL}", engine=self.name) from exc
        assert process.stdout is not None and process.stderr is not None
        header: bytes | None = b""  # None once the WAV header is behind us.
        carry = b""
        try:
            async for chunk in deadlines.each(self._reads(process.stdout)):
                if header is not None:
                    header += chunk
                    parsed = parse_wav_header(header)
                    if parsed is None:
                        continue
                    rate, offset = parsed
                    if rate != self.sample_rate:
                        raise EngineError(
                            f"{self.binary} voice {self.voice} speaks at {rate} Hz; set options.sample_rate",
                            engine=self.name,
                        )
                    chunk, header = header[offset:], None
                pcm, carry = whole_samples(carry + chunk)
                if pcm:
                    yield pcm
            async with asyncio.timeout_at(deadlines.end):
                errors = await process.stderr.read()
                status = await process.wait()
            if status != 0:
                detail = errors.decode("utf-8", "replace").strip()[:300]
                raise EngineError(f"{self.binary} failed ({status}): {detail}", engine=self.name)
        except TimeoutError as exc:
            raise EngineError(f"{self.binary} timed out", retryable=True, engine=self.name) from exc
        except ValueError as exc:
            raise EngineError(f"{self.binary} wrote an unexpected WAV: {exc}", engine=self.name) from exc
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def aclose(self) -> None:
        return None  # Nothing stays running between utterances.
