"""hark bench: the arithmetic, the fakes' timing, and a small run against a real server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hark.bench import headline, report, stats
from hark.bench.capacity import underruns
from hark.bench.client import Received, Session, b64_pcm_bytes, resampled_samples
from hark.bench.fakes import (
    DEFAULT_REPLY,
    Script,
    ScriptedLLM,
    ScriptedSTT,
    ScriptedTTS,
    first_sentence_token_index,
    scripted_first_audio_ms,
    sleep_until,
    tokens,
)
from hark.config import ProviderConfig, Settings
from hark.engines import registry
from hark.errors import ConfigError

# -- percentiles ------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear(q: int) -> None:
    rng = np.random.default_rng(5)
    values = list(rng.gamma(2.0, 3.0, size=301))
    assert stats.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges() -> None:
    assert stats.percentile([7.0], 99) == 7.0
    assert stats.percentile([1.0, 3.0], 50) == 2.0
    with pytest.raises(ValueError):
        stats.percentile([], 50)
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_summary() -> None:
    s = stats.summary([float(v) for v in range(1, 101)])
    assert s == {"p50": 50.5, "p95": 95.0, "p99": 99.0, "mean": 50.5, "min": 1.0, "max": 100.0, "n": 100}
    empty = stats.summary([], (50, 95))
    assert empty["n"] == 0 and empty["p50"] is None and empty["p95"] is None
    assert stats.summary([0.12345], (50,), digits=3)["p50"] == 0.123


# -- the overhead arithmetic --------------------------------------------------------------


def test_turn_times_split_voice_to_voice() -> None:
    # Speech ends at 10.000 s; the decisive frame leaves 0.340 s later; audio is back at 10.768 s.
    times = stats.TurnTimes(
        speech_end_sent=10.0, decision_sent=10.34, first_audio_received=10.768, scripted_ms=420.0
    )
    assert times.voice_to_voice_ms == pytest.approx(768.0)
    assert times.end_of_turn_wait_ms == pytest.approx(340.0)
    assert times.overhead_ms == pytest.approx(8.0)
    assert stats.server_overhead_ms(725.0, 290.0, 420.0) == pytest.approx(15.0)


def test_decision_chunk_and_frames() -> None:
    assert stats.end_chunks(300) == 9  # round(300 / 32), as hark's TurnDetector
    assert stats.end_chunks(10) == 1
    # Silence began at chunk 50 (1600 ms): the turn ends on chunk 58, whose last sample is at
    # 59 * 32 ms = 1888 ms of input, i.e. in 20 ms frame 94 (1880-1900 ms).
    assert stats.decision_chunk(1600, 300) == 58
    assert stats.position_frame(58) == 94
    assert stats.position_frame(0) == 1  # 32 ms: the second 20 ms frame
    assert stats.position_frame(4) == 7  # 160 ms ends exactly on a frame boundary: frame 7 (140-160)


def test_completing_frame() -> None:
    cumulative = [0, 490, 490, 979, 1468]
    assert stats.completing_frame(cumulative, 0) == 3  # 512 samples first available after frame 3
    assert stats.completing_frame(cumulative, 1) == 4
    with pytest.raises(ValueError):
        stats.completing_frame(cumulative, 2)


def test_resampler_output_count_does_not_depend_on_the_audio() -> None:
    from hark.audio import pcm16_to_float
    from hark.audio.polyphase import CausalResampler

    resampler = CausalResampler(24_000, 16_000)  # the listener's
    rng = np.random.default_rng(1)
    total = 0
    for frame in range(60):
        pcm = (rng.standard_normal(480) * 3000).astype("<i2").tobytes()
        total += len(resampler.process(pcm16_to_float(pcm)))
        assert resampled_samples(frame) == total == (frame + 1) * 320  # nothing held back


def test_ratio() -> None:
    assert stats.ratio(5.0, 20.0) == 0.25
    assert stats.ratio(None, 2.0) is None
    assert stats.ratio(1.0, 0.0) is None


# -- the fakes --------------------------------------------------------------------------


def test_script_arithmetic() -> None:
    assert tokens("a b. C") == ["a", " b.", " C"]
    assert "".join(tokens(DEFAULT_REPLY)) == DEFAULT_REPLY
    # "today." is the sixth token; the splitter knows it ended a sentence at " You" (index 6).
    assert first_sentence_token_index(DEFAULT_REPLY) == 6
    assert first_sentence_token_index("One sentence only") == 2
    assert scripted_first_audio_ms(Script()) == 200 + 6 * 20 + 100
    assert scripted_first_audio_ms(Script(stt_final_ms=150)) == 570


def _provider(**options: Any) -> ProviderConfig:
    return ProviderConfig(kind="scripted", options=options)


def test_registry_builds_the_fakes_from_options() -> None:
    settings = Settings.model_validate({"server": {"plugins": ["hark.bench.fakes"]}})
    registry.load_plugins(settings.server.plugins)
    stt = registry.build("stt", _provider(final_ms=150, text="hi"), settings)
    llm = registry.build("llm", _provider(first_token_ms=50, token_ms=5), settings)
    tts = registry.build("tts", _provider(first_audio_ms=30, sample_rate=22050), settings)
    assert isinstance(stt, ScriptedSTT) and stt.final_ms == 150 and stt.text == "hi"
    assert isinstance(llm, ScriptedLLM) and (llm.first_token_ms, llm.token_ms) == (50, 5)
    assert isinstance(tts, ScriptedTTS) and tts.first_audio_ms == 30 and tts.sample_rate == 22050
    with pytest.raises(ConfigError):
        registry.build("stt", _provider(final_ms="soon"), settings)
    with pytest.raises(ConfigError):
        registry.build("tts", _provider(sample_rate=1), settings)
    precise = registry.build("llm", _provider(precise=True), settings)
    assert isinstance(precise, ScriptedLLM) and precise.precise and not llm.precise
    with pytest.raises(ConfigError):
        registry.build("llm", _provider(precise="yes"), settings)


async def test_a_precise_wait_never_ends_before_its_deadline() -> None:
    for _ in range(20):
        deadline = time.monotonic() + 0.005
        await sleep_until(deadline, precise=True)
        assert time.monotonic() >= deadline


async def test_stt_answers_after_its_delay() -> None:
    stt = ScriptedSTT(final_ms=60, text="hello")
    started = time.monotonic()
    transcript = await stt.transcribe(np.zeros(16_000, dtype=np.float32))
    elapsed = time.monotonic() - started
    assert transcript.text == "hello" and transcript.duration_s == 1.0
    assert 0.06 <= elapsed < 1.0
    assert (await ScriptedSTT(final_ms=0).transcribe(np.zeros(10, dtype=np.float32))).text


async def test_llm_streams_on_an_absolute_schedule() -> None:
    llm = ScriptedLLM(first_token_ms=40, token_ms=10, reply="One two. Three four.")
    started = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    async for chunk in llm.stream([]):
        assert isinstance(chunk, str)
        arrivals.append((time.monotonic() - started, chunk))
    assert "".join(c for _, c in arrivals) == "One two. Three four."
    for index, (at, _) in enumerate(arrivals):
        assert at >= (40 + index * 10) / 1000.0


async def test_tts_delivers_the_sentence_after_its_delay() -> None:
    tts = ScriptedTTS(first_audio_ms=50, ms_per_char=10, sample_rate=24_000)
    started = time.monotonic()
    pieces = [(time.monotonic() - started, p) async for p in tts.synthesize("Twelve chars")]
    assert pieces[0][0] >= 0.05
    audio = b"".join(p for _, p in pieces)
    assert len(audio) == 2 * 24_000 * 120 // 1000  # 12 characters at 10 ms each
    assert [p async for p in tts.synthesize("  ")] == []
    streamed = ScriptedTTS(first_audio_ms=0, ms_per_char=20, stream_ms=100)
    started = time.monotonic()
    last = [time.monotonic() - started async for _ in streamed.synthesize("x" * 20)][-1]
    assert last >= 0.1


# -- client-side bookkeeping ------------------------------------------------------------


def test_base64_size_without_decoding() -> None:
    import base64

    for n in (0, 1, 2, 3, 100, 4800):
        assert b64_pcm_bytes(base64.b64encode(bytes(n)).decode()) == n


def test_underruns_count_gaps_within_a_reply() -> None:
    session = Session("ws://unused")
    chunk = 2 * 2400  # 100 ms at 24 kHz

    def audio(at: float, rid: str) -> Received:
        return Received(at, "audio", {"response_id": rid, "bytes": chunk})

    # Reply a: 0.6 s sent at once, then paced: fine. Reply b: a 300 ms stall after its buffer ran dry.
    session.events = [audio(0.0 + 0.0001 * i, "a") for i in range(6)]
    session.events += [audio(0.1 * i, "a") for i in range(1, 5)]
    session.events += [audio(10.0, "b"), audio(10.4, "b")]
    assert underruns(session) == 1
    assert underruns(session, after=len(session.events) - 1) == 0  # b's start is not seen


# -- report -----------------------------------------------------------------------------


def _details() -> dict[str, Any]:
    def summary(p50: float) -> dict[str, Any]:
        return stats.summary([p50 - 1, p50, p50 + 1])

    return {
        "overhead": {
            "hark": {"overhead_ms": summary(4.0)},
            "pipecat": {"overhead_ms": summary(30.0)},
            "errors": {},
        },
        "capacity": {"sessions_per_core": 150, "cpu_ms_per_session_second": 6.0, "mb_per_session": 0.5},
        "bargein": {"bargein_ms": summary(100.0), "target_ms": 116},
        "local": {
            "v2v": {"workers": {"voice_to_voice_ms": summary(900.0)}},
            "speech": {"pcm": {"ttfb_ms": summary(90.0), "rtf": summary(0.1)}},
        },
    }


def test_headline_and_targets() -> None:
    result: dict[str, Any] = {**headline.headline(_details()), "details": _details()}
    assert result["overhead_ms"] == {"p50": 4.0, "p95": 4.9, "p99": 5.0}
    assert result["overhead_ratio_p50"] == pytest.approx(4 / 30, abs=1e-3)
    assert result["speech_ttfb_ms"]["p50"] == 90.0
    met = {row["figure"]: row["met"] for row in headline.targets(result)}
    assert met["overhead p50"] is False  # 4 ms against ≤ 3
    assert met["overhead p50 vs Pipecat"] is True  # 4 ms against ≤ 30 / 5
    assert met["local voice-to-voice p50"] is False
    result["targets"] = headline.targets(result)
    assert "| overhead p50 | 4 | ≤ 3 ms | **no** |" in report.table(result)


def test_talking_sessions_capacity_and_soak_figures() -> None:
    steps = [
        {"sessions": n, "voice_to_voice_ms": stats.summary([v], (50, 95)), "turns": 9, "turns_failed": f,
         "shed": {"final": 0, "partial": n}}
        for n, v, f in ((4, 900.0, 0), (8, 2400.0, 1))
    ]  # fmt: skip
    soak = {"sessions": 20, "seconds": 600.0, "closed_by_server": 0, "rss_drift_pct": 12.5, "turns_failed": 0,
            "health_ms": {"p99": 4.0}, "event_loop_lag_p99_ms": 2.5}  # fmt: skip
    details: dict[str, Any] = {"talkers": {"capacity_sessions": 4, "steps": steps}, "soak": soak}
    result: dict[str, Any] = {**headline.headline(details), "details": details}
    assert result["talking_sessions_at_p95_1500ms"] == 4
    assert result["soak"]["health_p99_ms"] == 4.0 and result["soak"]["lag_p99_ms"] == 2.5
    met = {row["figure"]: row["met"] for row in headline.targets(result)}
    assert met["soak: sessions closed by the server"] is True
    assert met["soak: RSS drift"] is False
    table = report.figures_table(result)
    assert "| 8 talking sessions: voice-to-voice (ms) | p50 2400, p95 2400; 1 of 9 turns failed" in table


def _quick_result() -> dict[str, Any]:
    details = _details()
    result: dict[str, Any] = {
        **headline.headline(details),
        "details": details,
        "quick": True,
        "date": "today",
        "version": "0",
        "machine": headline.machine(),
    }
    result["targets"] = headline.targets(result)
    return result


def test_docs_keep_the_speed_work_log(tmp_path: Path) -> None:
    result = _quick_result()
    path = tmp_path / "benchmarks.md"
    report.write_docs(result, path, method="## Method\n\nx", default_log="nothing yet")
    assert "nothing yet" in path.read_text()
    text = path.read_text().replace("nothing yet", "1. made it faster")
    path.write_text(text)
    report.write_docs(result, path, method="## Method\n\nx", default_log="nothing yet")
    written = path.read_text()
    assert "1. made it faster" in written and "nothing yet" not in written
    assert "## Machine" in written and "| overhead p50 |" in written


def test_docs_keep_every_hand_kept_section(tmp_path: Path) -> None:
    result = _quick_result()
    path = tmp_path / "benchmarks.md"
    wyoming = "<!-- wyoming:start -->\n## Wyoming\n\nhark beside wyoming\n<!-- wyoming:end -->"
    ears = "<!-- ears:start -->\n## Steady ears\n\nthe same words\n<!-- ears:end -->"
    notes = "## Notes\n\nkept by hand, unmarked"
    stray = "<!-- recipe:start -->\nhow to rebuild the corpus\n<!-- recipe:end -->"
    path.write_text(
        f"# Old figures\n\n{stray}\n\n<!-- speed-work:start -->\n1. made it faster\n"
        f"<!-- speed-work:end -->\n\n{wyoming}\n\n{ears}\n\n{notes}\n"
    )
    for _ in range(2):  # and again over its own output: nothing doubled, nothing lost
        report.write_docs(result, path, method="## Method\n\nx", default_log="nothing yet")
        written = path.read_text()
        for section in (wyoming, ears, notes, stray, "1. made it faster"):
            assert written.count(section) == 1, section
        assert "# Old figures" not in written and "| overhead p50 |" in written
        assert written.index("<!-- speed-work:end -->") < written.index(wyoming) < written.index(ears)


# -- a small run against a real server ------------------------------------------------------


def test_small_overhead_run_against_a_real_server(tmp_path: Path) -> None:
    from hark.bench.runner import Plan, run

    only = {"overhead"}
    if importlib.util.find_spec("pipecat") is not None:
        only.add("pipecat")
    plan = Plan(
        overhead_turns=2,
        overhead_sessions=1,
        capacity_steps=(1,),
        capacity_window_s=1.0,
        bargein_turns=1,
        bargein_sessions=1,
        local_turns=1,
        speech_reps=1,
        repeats=1,
    )
    json_path = tmp_path / "bench.json"
    run(quick=True, only=only, json_path=json_path, docs_path=None, log=lambda _: None, plan=plan)
    result = json.loads(json_path.read_text())
    for key in ("overhead_ms", "pipecat_overhead_ms", "sessions_per_core", "mb_per_session", "bargein_ms",
                "local_voice_to_voice_ms", "speech_ttfb_ms", "targets", "machine"):  # fmt: skip
        assert key in result
    for quantile in ("p50", "p95", "p99"):
        assert isinstance(result["overhead_ms"][quantile], float | int)
    hark = result["details"]["overhead"]["hark"]
    assert hark["turns_ok"] == 2, hark["failures"]
    assert isinstance(hark["server_overhead_ms"]["p50"], float | int)
    if "pipecat" in only:
        assert result["pipecat_overhead_ms"] is not None, result["details"]["overhead"]["errors"]
        assert isinstance(result["overhead_ratio_p50"], float)


def test_run_refuses_unknown_scenarios() -> None:
    from hark.bench.runner import run

    with pytest.raises(ValueError, match="unknown scenario"):
        run(only={"nope"}, log=lambda _: None)


def test_the_bench_speech_is_heard_by_the_vad() -> None:
    from hark.bench.audio import check_vad, utterance

    assert check_vad(utterance()) > 0.5
    assert check_vad(utterance(synthetic=True)) > 0.3
    assert asyncio.iscoroutinefunction(Session.start)


def test_runs_are_combined_as_median_and_spread() -> None:
    runs = [stats.summary([v]) for v in (3.0, 5.0, 4.0)]
    combined = stats.across(runs)
    assert combined["runs"] == 3
    assert combined["median"]["p50"] == 4.0
    assert combined["spread"]["p50"] == [3.0, 5.0]
    assert stats.across([stats.summary([])])["median"]["p50"] is None


def test_headline_takes_the_median_of_runs() -> None:
    details = _details()
    hark = details["overhead"]["hark"]
    runs = [stats.summary([v]) for v in (2.0, 9.0, 3.0)]
    hark["runs"] = {"overhead_ms": {"per_run": runs, **stats.across(runs)}}
    result = headline.headline(details)
    assert result["overhead_ms"]["p50"] == 3.0
    assert result["overhead_spread_ms"]["hark p50"] == [2.0, 9.0]


def test_stalls_are_counted_in_their_window_and_set_against_the_slow_turns() -> None:
    from hark.bench import stalls

    events = [["gc", 10.0, 0.5, 0], ["gc", 20.0, 12.0, 2], ["lag", 10.0, 0.2], ["lag", 30.0, 8.0]]
    seen = stalls.window(events, 5.0, 25.0)
    assert seen["gc_collections"] == 2 and seen["gc_pauses"] == 1 and seen["gc_ms_max"] == 12.0
    assert seen["gc_by_generation"] == {0: 1, 1: 0, 2: 1}
    assert seen["loop_stalls"] == 0
    turns = [
        {"ok": True, "overhead_ms": 3.0, "decision_at": 1.0, "audio_at": 1.5},
        {"ok": True, "overhead_ms": 40.0, "decision_at": 19.9, "audio_at": 20.1},  # the GC pause
        {"ok": True, "overhead_ms": 30.0, "decision_at": 29.9, "audio_at": 30.1},  # the loop stall
        {"ok": True, "overhead_ms": 35.0, "decision_at": 40.0, "audio_at": 40.1},  # neither
    ]
    tail = stalls.attribute(turns, events, q=25)
    assert tail["tail_turns"] == 3
    assert tail["tail_with_gc_pause"] == 1
    assert tail["tail_with_loop_stall_only"] == 1
    assert tail["tail_unexplained"] == 1


def test_the_first_reply_audio_is_two_loop_passes_from_the_end_of_the_turn() -> None:
    from hark.bench import passes

    counted = passes.count(3)
    assert counted["passes_range"][0] == counted["passes_range"][1]  # the same every turn
    assert counted["pipeline_passes"] == 2  # the turn's tasks start; the synthesis stage wakes
