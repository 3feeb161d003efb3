"""One call: its peer connection, a set-up bounded in time, and a teardown that frees it all.

aiortc gathers every ICE candidate before it can write the answer: an unreachable STUN or TURN
server would stall the answer for as long as its transactions last, so gathering is bounded
(``gather_timeout_s``) and past it the answer is made again with host candidates only. A peer
that never completes ICE and DTLS is hung up after ``connect_timeout_s``. Which addresses the
host candidates are on (loopback or not) is ``hosts``'s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from hark.config import IceServer, WebRTCSettings
from hark.transports.webrtc import hosts
from hark.transports.webrtc.channel import ChannelSocket
from hark.transports.webrtc.media import ReplyTrack, mono_pcm16
from hark.transports.webrtc.opus import CallerAudio
from hark.transports.webrtc.sdp import CallError
from hark.transports.webrtc.session import CallSession

log = logging.getLogger("hark.webrtc")

CHANNEL_CLOSE_S = 0.5
"""How long a hang-up waits for the peer to acknowledge the data channel's close (a peer that
went away never does)."""


def ice_config(servers: list[IceServer]) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=server.urls,
                username=server.username,
                credential=server.credential.get_secret_value() if server.credential else None,
            )
            for server in servers
        ]
    )


class Call:
    def __init__(self, call_id: str, owner: str, settings: WebRTCSettings) -> None:
        self.id = call_id
        self.owner = owner
        self.settings = settings
        self.socket = ChannelSocket(self._ended)
        self.track = ReplyTrack(dtx=settings.dtx)
        self.pc: RTCPeerConnection | None = None
        self._remote: MediaStreamTrack | None = None
        self.caller: CallerAudio | None = None
        """The caller's Opus, decoded as it arrives (None: aiortc's own path, the remote track)."""
        self.connected = asyncio.Event()
        self.end_reason: str | None = None
        self.gather_fallback = False
        """Whether the answer had to be made again with host candidates only."""

    # -- set-up ---------------------------------------------------------------------------

    async def answer(self, offer: str) -> str:
        """The SDP answer to ``offer``; CallError 400 when aiortc cannot use the offer."""
        try:
            async with asyncio.timeout(self.settings.gather_timeout_s):
                return await self._negotiate(offer, ice_config(self.settings.ice_servers))
        except TimeoutError:
            if not self.settings.ice_servers:
                raise CallError(
                    503, "could not gather ICE candidates in time", "ice_gathering_timeout"
                ) from None
            log.warning(
                "ICE gathering through the configured servers timed out; answering with host candidates"
            )
            self.gather_fallback = True
            await self._close_pc()
            self.track = ReplyTrack(dtx=self.settings.dtx)
            self._remote = None
            self.caller = None
            return await self._negotiate(offer, RTCConfiguration(iceServers=[]))

    async def _negotiate(self, offer: str, config: RTCConfiguration) -> str:
        pc = RTCPeerConnection(config)
        self.pc = pc
        pc.on("datachannel", self.socket.attach)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", lambda: self._on_state(pc))
        # Opus only, both ways, whatever order the offer lists its codecs in: the reply track
        # hands the sender Opus packets and the caller's audio is decoded as Opus at 48 kHz.
        # (The offer was checked for Opus; the transceiver made here is the one the offer's
        # audio section lands on, and the one the reply track is added to.)
        audio = pc.addTransceiver("audio", direction="recvonly")
        audio.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
        )
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except (ValueError, KeyError, IndexError, AttributeError, TypeError, OperationError) as exc:
            await self._close_pc()
            raise CallError(
                400, f"the SDP offer cannot be used: {str(exc)[:120]}", "invalid_offer", param="sdp"
            ) from None
        if audio.mid is None:  # the offer's audio section did not land on it
            await self._close_pc()
            raise CallError(400, "the SDP offer has no audio section (m=audio)", "invalid_offer", param="sdp")
        pc.addTrack(self.track)
        answer = await pc.createAnswer()
        with hosts.offering(self.settings.loopback_candidates):  # gathering happens here
            await pc.setLocalDescription(answer)
        self.caller = CallerAudio.install(audio.receiver, pc.localDescription.sdp)
        return pc.localDescription.sdp

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._remote is None:
            self._remote = track

    def _on_state(self, pc: RTCPeerConnection) -> None:
        state = pc.connectionState
        if state == "connected":
            self.connected.set()
        elif state in ("failed", "closed"):
            self.socket.hang_up(f"connection {state}")

    def _ended(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason

    # -- the call -------------------------------------------------------------------------

    async def run(self, session: CallSession, on_timeout: Callable[[], None]) -> None:
        """Until the call ends (hang-up, peer gone, idle, drain); everything is freed on return."""
        tasks = [asyncio.create_task(self._watch_connect(on_timeout))]
        if self._remote is not None:
            tasks.append(asyncio.create_task(self._listen(self._remote, session)))
        if self.caller is not None:
            tasks.append(asyncio.create_task(self._hear(self.caller, session)))
        try:
            await session.run()
        finally:
            # 1. The session has stopped (its conversation closed).  2. Stop listening and
            #    watching.  3. Close the data channel, so that the peer gets what was sent before
            #    it sees the channel close.  4. Close the peer connection (tracks, transports,
            #    sockets).
            self.socket.hang_up("session ended")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.track.stop()
            if self.pc is not None and self.pc.connectionState == "connected":
                await self.socket.close_channel(CHANNEL_CLOSE_S)
            await self._close_pc()

    async def abandon(self) -> None:
        """A call refused after its answer was made (its session settings were invalid)."""
        self.socket.hang_up("refused")
        self.track.stop()
        await self._close_pc()

    async def _watch_connect(self, on_timeout: Callable[[], None]) -> None:
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                await self.connected.wait()
        except TimeoutError:
            log.info("hanging up a call whose ICE/DTLS never completed", extra={"call": self.id})
            on_timeout()
            self.socket.hang_up("connect_timeout")

    async def _hear(self, caller: CallerAudio, session: CallSession) -> None:
        while True:
            await session.push_audio(await caller.take())

    async def _listen(self, remote: MediaStreamTrack, session: CallSession) -> None:
        """What aiortc decodes itself (Opus, 48 kHz): the caller's audio when ``CallerAudio``
        could not be installed."""
        while True:
            try:
                frame = await remote.recv()
            except MediaStreamError:
                return
            if isinstance(frame, AudioFrame):
                await session.push_audio(mono_pcm16(frame))

    async def _close_pc(self) -> None:
        pc, self.pc = self.pc, None
        if pc is not None:
            with contextlib.suppress(Exception):  # closing what already failed
                await pc.close()
