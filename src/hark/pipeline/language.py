"""The language a conversation's speech is transcribed in: set at start from ``stt.language``,
changed by the session (Realtime's ``audio.input.transcription.language``).

One ``SpeechLanguage`` is shared by everything in a conversation that transcribes (partial
transcripts, the speculation at a pause, speech over a reply, the final transcript), so a change
reaches all of them at once and no copy can go stale.
"""

from __future__ import annotations

from dataclasses import dataclass

from hark.engines.base import DETECT_LANGUAGE
from hark.pipeline.errors import InvalidValue

_ISO_639_1 = """aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy
    da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy
    hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li
    ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa
    pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th
    ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu"""
ISO_639_1 = frozenset(_ISO_639_1.split())
"""The two-letter codes of ISO 639-1 (Whisper names its languages by these, and a few more)."""


@dataclass(slots=True)
class SpeechLanguage:
    code: str | None
    """What the STT is asked for: an ISO-639-1 code, ``DETECT_LANGUAGE``, or None (the STT's own
    default, ``stt.language``)."""

    @property
    def reported(self) -> str | None:
        """As the Realtime session reports it: None while the language is detected."""
        return None if self.code == DETECT_LANGUAGE else self.code


def checked_language(value: str, *, param: str) -> str:
    """``value`` as an ISO-639-1 code (any case); raises InvalidValue naming ``param``."""
    code = value.strip().lower()
    if code not in ISO_639_1:
        raise InvalidValue(
            f"transcription language {value[:32]!r} is not an ISO-639-1 code: give two letters, "
            "such as 'en' or 'fr', or null to detect the language",
            param=param,
        )
    return code
