"""SIPp scenarios for a phone on a voice-menu trunk: it calls, then presses keys at the menu.

A phone (an ATA or a SIP phone on a hot line) sends a plain INVITE with no
``X-Inmate-PIN``; the controller answers it at once and takes the language,
the PIN and the number by keypad. SIPp cannot loop over the characters of a
string, so the scenario is written out for the keys of one call:

    python loadtests/menu_phone.py --keys "1 100001# 5125550100#" --talk-ms 2000 -o phone.xml
    sipp 127.0.0.1:5060 -sf phone.xml -i 127.0.0.21 -p 5072 -mp 6072 -m 1 -timeout 90

Each group of keys (separated by spaces) is entered after ``--wait-ms`` of
silence, one key every ``--gap-ms``, as SIP INFO (``application/dtmf-relay``,
the default) or as RFC 4733 telephone events replayed from SIPp's shipped
captures (``--dtmf rfc4733``). Each capture is one event with a fixed RTP
timestamp, and a receiver rightly takes a second copy of it for a
retransmission: so every key press gets its own copy of its capture, written
beside the scenario, with the event's timestamp and sequence numbers moved on.
Then the phone either hangs up after ``--talk-ms`` or, with ``--await-bye``,
waits for the controller's BYE (a refusal spoken to the caller, a declined
call). It logs ``answered call=...
callid=...`` and ``bye ...`` lines as the facility scenarios do.
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: SIPp's shipped captures of one RFC 4733 event each (Debian package sip-tester).
PCAP_DIR = Path("/usr/share/sip-tester")
PCAP_NAMES = {**{d: f"dtmf_2833_{d}.pcap" for d in "0123456789"},
              "#": "dtmf_2833_pound.pcap", "*": "dtmf_2833_star.pcap"}
#: How long one of those captures lasts (its last end packet), so keys never overlap.
PCAP_MS = 260


@dataclass(frozen=True)
class MenuCall:
    """The keys one caller presses, and how the call ends on the phone's side."""

    keys: Sequence[str]  # groups, e.g. ("1", "100001#", "5125550100#")
    dtmf: str = "info"  # "info" or "rfc4733"
    wait_ms: int = 1500  # silence before each group (the prompt is heard, then barged in)
    gap_ms: int = 150  # between two keys of a group
    talk_ms: int = 2000  # after the last group, before the phone's BYE
    await_bye: bool = False  # instead: wait for the controller's BYE
    bye_timeout_ms: int = 90_000
    rtp_key: bool = False  # the SDP names the port of -key rtp_port (an RtpSink)

    def __post_init__(self) -> None:
        if self.dtmf not in ("info", "rfc4733"):
            raise ValueError(f"dtmf must be info or rfc4733, not {self.dtmf!r}")
        for group in self.keys:
            bad = [k for k in group if k not in PCAP_NAMES]
            if bad:
                raise ValueError(f"keys must be 0-9, * or #; got {''.join(bad)!r}")


_HEAD = """<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- Written by loadtests/menu_phone.py: a menu-trunk phone pressing {summary}. -->
<scenario name="menu phone: {summary}">
"""

_FROM = '"Phone" <sip:[station]@[local_ip]:[local_port]>;tag=[pid]P[call_number]'
_TO = "<sip:[service]@[remote_ip]:[remote_port]>"


def _request(method: str, cseq: int, body: str = "", content_type: str = "",
             txn: str = "") -> str:
    first = ("INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0" if method == "INVITE"
             else f"{method} [next_url] SIP/2.0")
    to = _TO if method == "INVITE" else _TO + "[peer_tag_param]"
    lines = [
        first,
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport",
        f"From: {_FROM}",
        f"To: {to}",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:[station]@[local_ip]:[local_port];transport=[transport]>",
        "Max-Forwards: 70",
    ]
    if method != "INVITE" and method != "ACK":
        lines.append("[routes]")
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    lines.append("Content-Length: [len]" if body else "Content-Length: 0")
    text = "\n      ".join(lines) + "\n\n"
    if body:
        text += "      " + body.replace("\n", "\n      ") + "\n"
    attrs = ' retrans="500"' if method != "ACK" else ""
    if txn:
        attrs += f' start_txn="{txn}"' if method != "ACK" else f' ack_txn="{txn}"'
    return f"  <send{attrs}>\n    <![CDATA[\n      {text}    ]]>\n  </send>\n"


def _sdp(rtp_key: bool) -> str:
    port = "[rtp_port]" if rtp_key else "[media_port]"
    return "\n".join([
        "v=0",
        "o=phone 53655765 2353687637 IN IP[local_ip_type] [local_ip]",
        "s=-",
        "c=IN IP[media_ip_type] [media_ip]",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    ])


def _pause(ms: int) -> str:
    return f'  <pause milliseconds="{ms}"/>\n' if ms > 0 else ""


#: Ethernet, IPv4 and UDP headers before the RTP header in the shipped captures.
_RTP_AT = 14 + 20 + 8


def press_pcap(key: str, press: int, directory: Path) -> Path:
    """A copy of the shipped capture of ``key`` for the ``press``-th key of a call: its RTP
    timestamp and sequence numbers moved on, so that no two presses look alike."""
    data = bytearray((PCAP_DIR / PCAP_NAMES[key]).read_bytes())
    offset = 24  # the pcap file header
    while offset + 16 <= len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        rtp = offset + 16 + _RTP_AT
        seq, timestamp = struct.unpack_from("!HI", data, rtp + 2)
        struct.pack_into("!HI", data, rtp + 2, (seq + 16 * press) % (1 << 16),
                         (timestamp + 8000 * (press + 1) * 13) % (1 << 32))
        offset += 16 + length
    path = directory / f"dtmf_{press:03d}_{PCAP_NAMES[key]}"
    path.write_bytes(bytes(data))
    return path


def scenario(call: MenuCall, pcap_dir: Path | None = None) -> str:
    """The SIPp scenario XML for ``call``; RFC 4733 presses are written to ``pcap_dir``."""
    summary = " ".join(call.keys) + f" by {call.dtmf}"
    out = [_HEAD.format(summary=summary)]
    out.append(_request("INVITE", 1, _sdp(call.rtp_key), "application/sdp", "invite"))
    out.append('  <recv response="100" optional="true" response_txn="invite"/>\n')
    out.append('  <recv response="180" optional="true" response_txn="invite"/>\n')
    out.append('  <recv response="183" optional="true" response_txn="invite"/>\n')
    out.append(
        '  <recv response="200" rtd="true" rrs="true" response_txn="invite">\n'
        "    <action>\n"
        '      <ereg regexp="m=audio [1-9][0-9]* RTP/AVP (0|8)" search_in="body"'
        ' check_it="true" assign_to="answer_media,answer_pt"/>\n'
        '      <log message="answered call=[call_number] callid=[call_id] pt=[$answer_pt]"/>\n'
        "    </action>\n  </recv>\n")
    out.append(_request("ACK", 1, txn="invite"))
    cseq = 1
    presses = 0
    for group in call.keys:
        out.append(_pause(call.wait_ms))
        for i, key in enumerate(group):
            if i:
                out.append(_pause(call.gap_ms))
            if call.dtmf == "info":
                cseq += 1
                txn = f"info{cseq}"
                body = f"Signal={key}\nDuration=160"
                out.append(_request("INFO", cseq, body, "application/dtmf-relay", txn))
                out.append(f'  <recv response="200" response_txn="{txn}"/>\n')
            else:
                if pcap_dir is None:
                    raise ValueError("RFC 4733 keys need a directory for their captures")
                pcap = press_pcap(key, presses, pcap_dir)
                presses += 1
                out.append("  <nop>\n    <action>\n"
                           f'      <exec play_pcap_audio="{pcap}"/>\n'
                           "    </action>\n  </nop>\n")
                out.append(_pause(PCAP_MS))
    if call.await_bye:
        out.append(
            f'  <recv request="BYE" timeout="{call.bye_timeout_ms}">\n'
            "    <action>\n"
            '      <log message="bye call=[call_number] callid=[call_id] from=controller"/>\n'
            "    </action>\n  </recv>\n")
        out.append("  <send>\n    <![CDATA[\n\n      SIP/2.0 200 OK\n      [last_Via:]\n"
                   "      [last_From:]\n      [last_To:]\n      [last_Call-ID:]\n"
                   "      [last_CSeq:]\n      Content-Length: 0\n\n    ]]>\n  </send>\n")
        out.append(_pause(500))  # for a retransmitted BYE
    else:
        out.append(_pause(call.talk_ms))
        cseq += 1
        out.append(_request("BYE", cseq, txn="bye"))
        out.append(
            '  <recv response="200" crlf="true" response_txn="bye">\n'
            "    <action>\n"
            '      <log message="hungup call=[call_number] callid=[call_id]"/>\n'
            "    </action>\n  </recv>\n")
    out.append('  <Reference variables="answer_media"/>\n')
    out.append('  <ResponseTimeRepartition value="10, 20, 50, 100, 200, 500, 1000"/>\n')
    out.append('  <CallLengthRepartition value="1000, 5000, 10000, 20000, 60000"/>\n')
    out.append("</scenario>\n")
    return "".join(out)


def write(call: MenuCall, path: Path) -> Path:
    """Write the scenario to ``path`` (and RFC 4733 presses' captures beside it)."""
    path.write_text(scenario(call, path.parent.resolve()))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", required=True,
                        help='key groups separated by spaces, e.g. "1 100001# 5125550100#"')
    parser.add_argument("--dtmf", choices=("info", "rfc4733"), default="info")
    parser.add_argument("--wait-ms", type=int, default=1500)
    parser.add_argument("--gap-ms", type=int, default=150)
    parser.add_argument("--talk-ms", type=int, default=2000)
    parser.add_argument("--await-bye", action="store_true")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    call = MenuCall(keys=tuple(args.keys.split()), dtmf=args.dtmf, wait_ms=args.wait_ms,
                    gap_ms=args.gap_ms, talk_ms=args.talk_ms, await_bye=args.await_bye)
    write(call, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
