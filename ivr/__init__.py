"""Media for the call controller: RTP, G.711, prompts, DTMF, menus, bridging, recording.

How the controller uses it, per call leg:

* ``ports = PortAllocator(20000, 29999)`` once; ``await RtpEndpoint.open(codec,
  host=..., allocator=ports, remote=(ip, port), telephone_event_pt=101,
  on_event=callback)`` per leg (``PortsExhausted`` -> answer 503). With
  ``spares = SparePairs(ports, host)`` (``spares.fill()`` once the loop runs,
  ``spares.close()`` at the end), ``open(..., spares=spares)`` takes a pair
  bound ahead and waits for nothing.
  ``codec`` is ``PCMU`` or ``PCMA`` (``Codec(name, payload_type)`` for a
  dynamic type). For the carrier leg the port goes into our offer before the
  answer is known: open without ``remote``, then ``endpoint.configure(codec=...,
  remote=(ip, port), telephone_event_pt=...)`` from the answer.
* ``catalogue = PromptCatalogue(lang)``; ``endpoint.play(catalogue.encoded(seq,
  codec))`` plays a prompt sequence; ``PlaybackFinished`` is reported.
* ``menu = AcceptanceMenu(lang, facility_id=..., privileged=...,
  single_call_charge=None | Decimal)``; feed it ``start``, ``digit`` (from
  ``DtmfReceived`` events: RFC 4733 and in-band arrive from the endpoint,
  SIP INFO bodies go through ``parse_dtmf_info`` then ``endpoint.dtmf_info``),
  ``prompt_finished``, ``rate_info``, ``timer`` at ``get_timer()``, and
  ``hangup``; carry out the actions it returns (``Play``, ``StopPlayback``,
  ``HearRate``, and one terminal ``Accept``/``AcceptSingleCall``/``Decline``/
  ``Block``/``NoAnswer`` with a ``farewell`` sequence).
* On acceptance: ``recorder = open_recording(dir, call_id, privileged=...,
  codecs=(codec_a, codec_b), now=loop.time())`` (None for privileged calls:
  they are never recorded; ``recorder.path`` goes in the CDR), then
  ``Bridge(facility_leg, called_leg, recorder=recorder,
  on_inactive=callback).start()``; ``bridge.stop()`` at hang-up closes the
  recording. The one-minute warning is ``await bridge.announce(to_a, to_b)`` with
  ``catalogue.encoded(("one_minute_warning",), codec)`` for each leg: both hear it
  while still bridged.
* On a menu trunk (no PIN header): ``menu = CallerMenu(languages, pin_length=...,
  menu_limit=...)`` takes language, PIN and number by keypad. Feed it
  ``start``, ``digit``, ``prompt_finished``, ``timer`` at ``get_timer()``,
  ``hangup``, and the controller's answers: ``station_locked``,
  ``pin_checked(PinValid | PinInvalid | PinSuspended | PinLocked)`` after
  ``CheckPin``, ``call_refused(Refusal, hours=...)`` or ``call_placed`` after
  ``PlaceCall``, then ``call_outcome(CalledOutcome)``. ``caller_menu.Play``
  carries the language whose catalogue to use; ``PlayRingback`` loops
  ``ringback_payload(codec)`` (one 6 s cycle: play it again when it ends). It
  ends with ``Connected``, ``EndCall`` (play its farewell, then BYE) or
  ``Abandoned``; ``menu.menu_seconds`` goes in the CDR.
* Run the loop with ``asyncio.Runner(loop_factory=ivr.loop_factory())`` (uvloop
  when installed).
"""

from ivr.bridge import Bridge, RelayPath
from ivr.caller_menu import (
    Abandoned,
    CalledOutcome,
    CallerMenu,
    CallerMenuAction,
    CheckPin,
    Connected,
    EndCall,
    PinInvalid,
    PinLocked,
    PinResult,
    PinSuspended,
    PinValid,
    PlaceCall,
    PlayRingback,
    Refusal,
)
from ivr.catalogue import PromptCatalogue, read_wav
from ivr.errors import CodecMismatch, MediaError, PortsExhausted, PromptMissing
from ivr.events import (
    DtmfReceived,
    MediaEvent,
    MediaTimedOut,
    PeerAddressLearned,
    PlaybackFinished,
    RtcpReportReceived,
)
from ivr.g711 import PCMA, PCMU, Codec, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from ivr.inband import InbandDetector, dtmf_tone
from ivr.loop import loop_factory
from ivr.menu import (
    Accept,
    AcceptanceMenu,
    AcceptSingleCall,
    Block,
    Decline,
    HearRate,
    MenuAction,
    NoAnswer,
    Play,
    StopPlayback,
)
from ivr.phrases import (
    calling_hours,
    rate_announcement,
    say_minutes,
    say_money,
    say_number,
    say_time,
)
from ivr.ports import PortAllocator
from ivr.recorder import Recorder, open_recording
from ivr.rfc4733 import TelephoneEvent, TelephoneEventReceiver, event_packets
from ivr.rtcp import ReceiverReport, ReceptionStats, SenderReport, parse_compound
from ivr.rtp import RtpPacket, SequenceTracker
from ivr.rtp_sockets import RtpEndpoint, SparePairs
from ivr.session import MediaSession
from ivr.sip_info import InfoDigit, parse_dtmf_info
from ivr.tones import ringback_frames, ringback_payload, ringback_samples

__all__ = [
    "PCMA",
    "PCMU",
    "Abandoned",
    "Accept",
    "AcceptSingleCall",
    "AcceptanceMenu",
    "Block",
    "Bridge",
    "CalledOutcome",
    "CallerMenu",
    "CallerMenuAction",
    "CheckPin",
    "Codec",
    "CodecMismatch",
    "Connected",
    "Decline",
    "DtmfReceived",
    "EndCall",
    "HearRate",
    "InbandDetector",
    "InfoDigit",
    "MediaError",
    "MediaEvent",
    "MediaSession",
    "MediaTimedOut",
    "MenuAction",
    "NoAnswer",
    "PeerAddressLearned",
    "PinInvalid",
    "PinLocked",
    "PinResult",
    "PinSuspended",
    "PinValid",
    "PlaceCall",
    "Play",
    "PlayRingback",
    "PlaybackFinished",
    "PortAllocator",
    "PortsExhausted",
    "PromptCatalogue",
    "PromptMissing",
    "ReceiverReport",
    "ReceptionStats",
    "Recorder",
    "Refusal",
    "RelayPath",
    "RtcpReportReceived",
    "RtpEndpoint",
    "RtpPacket",
    "SenderReport",
    "SequenceTracker",
    "SparePairs",
    "StopPlayback",
    "TelephoneEvent",
    "TelephoneEventReceiver",
    "alaw_decode",
    "alaw_encode",
    "calling_hours",
    "dtmf_tone",
    "event_packets",
    "loop_factory",
    "open_recording",
    "parse_compound",
    "parse_dtmf_info",
    "rate_announcement",
    "read_wav",
    "ringback_frames",
    "ringback_payload",
    "ringback_samples",
    "say_minutes",
    "say_money",
    "say_number",
    "say_time",
    "ulaw_decode",
    "ulaw_encode",
]
