"""Audio in and out of hark: PCM16 helpers, resampling, decoding uploads, encoding replies.

pcm.py       PCM16 validation, float conversion, fixed-size chunks
resample.py  streaming soxr resamplers
polyphase.py the causal resampler of the listening path (holds nothing back)
decode.py    uploaded files of any container, bounded by duration
tempo.py     speed changes at the same pitch
codecs.py    PCM → mp3/opus/aac/flac/wav/pcm, streaming (imports PyAV; not re-exported here)
"""

from hark.audio.decode import (
    MAX_INPUT_CHANNELS,
    MAX_INPUT_RATE,
    AudioTooLong,
    declared_seconds,
    decode_audio_file,
)
from hark.audio.pcm import (
    AudioFormatError,
    Chunker,
    decode_base64_pcm16,
    float_to_pcm16,
    pcm16_duration_ms,
    pcm16_to_float,
)
from hark.audio.polyphase import CausalResampler
from hark.audio.resample import PCM16Resampler, Resampler
from hark.audio.tempo import change_speed

__all__ = [
    "MAX_INPUT_CHANNELS",
    "MAX_INPUT_RATE",
    "AudioFormatError",
    "AudioTooLong",
    "CausalResampler",
    "Chunker",
    "PCM16Resampler",
    "Resampler",
    "change_speed",
    "declared_seconds",
    "decode_audio_file",
    "decode_base64_pcm16",
    "float_to_pcm16",
    "pcm16_duration_ms",
    "pcm16_to_float",
]
