"""certrelay's own Received header (README "The Received header") as a backend receives it:
split it off the message content, parse it line by line against the documented layout, and
check its hygiene (line lengths, characters, line ends).

The layout (continuation lines start with a TAB, every line ends with CR LF):

    Received: from <helo> (unknown [<addr>])
    	(using TLSv1.3 with cipher ... (256/256 bits)
    	 key-exchange X25519 server-signature ... client-signature ...)
    	(Client CN "<cn>", Issuer "<issuer cn>" (verified OK|not verified))
    	(Client fingerprint SHA256 <hex>, identity "<identity>")
    	by <hostname> (certrelay) with ESMTPSA id <id>
    	for <rcpt>; <RFC 5322 date>

with the TLS lines only for a TLS session, "(Client did not present a certificate)" instead of
the CN line without a certificate, the fingerprint line only with a certificate (the identity
only for a listed one), and "by ... id <id>;" then the date alone when there is not exactly one
recipient.

A parse failure raises AssertionError with the header in the message, so tests can call
`parse_received` directly inside an assertion-heavy test."""

from __future__ import annotations

import email.utils
import re
import time

MAX_LINE = 998                     # RFC 5322 2.1.1, CR LF excluded

_DATE = (r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [ \d]\d "
         r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d "
         r"\+0000 \(UTC\)")
_FIRST = re.compile(r"^Received: from (?P<helo>[!-~]+) "
                    r"\((?P<name>[!-~]+) \[(?P<addr>[^\]\s]+)\]\)$")
_USING = re.compile(r"^\t\(using (?P<version>\S+) with cipher (?P<cipher>\S+) "
                    r"\((?P<bits>\d+)/(?P<alg_bits>\d+) bits\)(?P<close>\))?$")
_DETAIL = re.compile(r"^\t (?P<text>\S.*?)(?P<close>\))?$")
_NO_CERT = "\t(Client did not present a certificate)"
_CERT = re.compile(r'^\t\(Client CN "(?P<cn>[^"]*)", Issuer "(?P<issuer>[^"]*)" '
                   r'\((?P<verified>verified OK|not verified)\)\)$')
_FINGERPRINT = re.compile(r'^\t\(Client fingerprint (?P<digest>[A-Z0-9-]+) '
                          r'(?P<fp>[0-9A-F]{2}(?::[0-9A-F]{2})*)'
                          r'(?:, identity "(?P<identity>[^"]*)")?\)$')
_BY = re.compile(r"^\tby (?P<host>\S+) \(certrelay\) with (?P<protocol>[A-Z0-9]+)"
                 r"(?: id (?P<id>[^\s;]+))?(?P<semi>;)?$")
_FOR = re.compile(r"^\tfor (?P<rcpt><[^>]*>); (?P<date>" + _DATE + r")$")
_DATE_ONLY = re.compile(r"^\t(?P<date>" + _DATE + r")$")


class Received:
    """One parsed certrelay Received header. Attributes:

    raw          the header's bytes, line ends included
    lines        its lines (str, no line ends)
    helo, name, addr  from the first line (name: the verified client name, or "unknown")
    tls          None (plaintext) or dict(version, cipher, bits, alg_bits, details=[lines])
                 where details are the continuation lines of "(using ...)" without the
                 leading TAB SPACE and without the closing ")" (empty for the one-line form)
    certificate  None (no TLS), "absent", or dict(cn, issuer, verified: bool)
    fingerprint  None or dict(digest, fp, identity: str | None)
    host, protocol, id, rcpt (None without the "for" clause), date (str)
    """

    def __init__(self, raw: bytes, eol: bytes = b"\r\n"):
        self.raw = raw
        self.eol = eol
        text = raw.decode("utf-8", "replace")
        e = eol.decode()
        if not text.endswith(e):
            self._fail("does not end with a line end")
        self.lines = text[:-len(e)].split(e)
        self.tls = None
        self.certificate = None
        self.fingerprint = None
        self._parse()

    def _fail(self, why: str):
        raise AssertionError(f"certrelay Received header: {why}:\n{self.raw!r}\n"
                             + self.raw.decode("utf-8", "replace"))

    def _parse(self):
        lines = list(self.lines)

        def take(regex, what):
            if not lines:
                self._fail(f"ends before {what}")
            m = regex.match(lines[0]) if isinstance(regex, re.Pattern) else (
                lines[0] == regex)
            if not m:
                self._fail(f"line {len(self.lines) - len(lines) + 1} is not {what}: "
                           f"{lines[0]!r}")
            lines.pop(0)
            return m

        m = take(_FIRST, "'Received: from <helo> (<name> [<addr>])'")
        self.helo, self.name, self.addr = m.group("helo"), m.group("name"), m.group("addr")

        if lines and lines[0].startswith("\t(using "):
            m = take(_USING, "the '(using ...' line")
            self.tls = {"version": m.group("version"), "cipher": m.group("cipher"),
                        "bits": int(m.group("bits")), "alg_bits": int(m.group("alg_bits")),
                        "details": []}
            closed = bool(m.group("close"))
            while not closed:
                d = take(_DETAIL, "a TLS detail line ('\\t <text>')")
                self.tls["details"].append(d.group("text"))
                closed = bool(d.group("close"))
            if lines and lines[0] == _NO_CERT:
                take(_NO_CERT, "the no-certificate comment")
                self.certificate = "absent"
            else:
                c = take(_CERT, "the '(Client CN ...' line")
                self.certificate = {"cn": c.group("cn"), "issuer": c.group("issuer"),
                                    "verified": c.group("verified") == "verified OK"}
                if lines and lines[0].startswith("\t(Client fingerprint"):
                    f = take(_FINGERPRINT, "the '(Client fingerprint ...' line")
                    self.fingerprint = {"digest": f.group("digest"), "fp": f.group("fp"),
                                        "identity": f.group("identity")}

        b = take(_BY, "'by <host> (certrelay) with <protocol> id <id>'")
        self.host, self.protocol, self.id = b.group("host"), b.group("protocol"), b.group("id")
        if b.group("semi"):
            d = take(_DATE_ONLY, "the date line")
            self.rcpt = None
        else:
            d = take(_FOR, "'for <rcpt>; <date>'")
            self.rcpt = d.group("rcpt")
        self.date = d.group("date")
        if lines:
            self._fail(f"unexpected lines after the date: {lines!r}")
        when = email.utils.parsedate_to_datetime(self.date).timestamp()
        if abs(when - time.time()) > 600:
            self._fail(f"date {self.date!r} is not now")

    @property
    def using_text(self) -> str:
        """The "(using ...)" comment as one line, as certrelay logs it after "established
        from ...: " (e.g. "TLSv1.3 with cipher X (256/256 bits) key-exchange X25519 ...")."""
        t = self.tls
        head = f"{t['version']} with cipher {t['cipher']} ({t['bits']}/{t['alg_bits']} bits)"
        return " ".join([head] + t["details"])

    def __repr__(self):
        return f"Received({self.raw!r})"


# ---------------------------------------------------------------------------------------------
def header_fields(content: bytes, eol: bytes = b"\r\n") -> list[bytes]:
    """The header fields of a message (each with its continuation lines and line ends), up to
    the empty line that ends the header section."""
    fields: list[bytes] = []
    pos = 0
    while pos < len(content):
        end = content.find(eol, pos)
        line = content[pos:] if end < 0 else content[pos:end + len(eol)]
        if line == eol:
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        pos += len(line)
    return fields


def received_fields(content: bytes, eol: bytes = b"\r\n") -> list[bytes]:
    """The Received header fields of a message, top first."""
    return [f for f in header_fields(content, eol) if f.lower().startswith(b"received:")]


def is_certrelay(field: bytes) -> bool:
    return b" (certrelay) with " in field


def split_received(content: bytes, eol: bytes = b"\r\n") -> tuple[Received, bytes]:
    """Splits exactly one leading certrelay Received header off `content`; returns (parsed
    header, the rest). Fails unless the content starts with one, or if the rest starts with
    another certrelay Received header (exactly one is prepended)."""
    fields = header_fields(content, eol)
    if not fields or not fields[0].startswith(b"Received: ") or not is_certrelay(fields[0]):
        raise AssertionError("content does not start with certrelay's Received header:\n"
                             f"{content[:400]!r}")
    header = fields[0]
    rest = content[len(header):]
    if len(fields) > 1 and fields[1].startswith(b"Received:") and is_certrelay(fields[1]):
        raise AssertionError(f"two certrelay Received headers:\n{content[:1200]!r}")
    return Received(header, eol), rest


def hygiene(header: bytes, eol: bytes = b"\r\n", allow_utf8: bool = False) -> list[str]:
    """What is wrong with a header's bytes: lines over 998 octets, bytes other than printable
    ASCII, SP and TAB (UTF-8 allowed when `allow_utf8`), bare CR or LF, continuation lines not
    starting with white space, a missing final line end. [] when clean."""
    problems = []
    if not header.endswith(eol):
        problems.append("does not end with a line end")
    body = header[:-len(eol)] if header.endswith(eol) else header
    for i, line in enumerate(body.split(eol)):
        if len(line) > MAX_LINE:
            problems.append(f"line {i + 1} has {len(line)} octets (> {MAX_LINE})")
        if b"\r" in line or b"\n" in line:
            problems.append(f"line {i + 1} holds a bare CR or LF: {line!r}")
        bad = sorted({c for c in line if not (0x20 <= c < 0x7f or c == 0x09
                                              or (allow_utf8 and c >= 0x80))})
        if bad:
            problems.append(f"line {i + 1} holds bytes {[hex(c) for c in bad]}: {line!r}")
        if i > 0 and line[:1] not in (b"\t", b" "):
            problems.append(f"line {i + 1} is not a continuation line: {line!r}")
    return problems


def sanitized(raw: bytes | str) -> str:
    """What README's rule makes of a certificate text: printable ASCII only; quotes,
    backslashes, parentheses, control bytes and every byte of a non-ASCII character become '?';
    a NUL anywhere makes the name absent ("")."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if b"\0" in raw:
        return ""
    return "".join(chr(c) if 0x20 <= c < 0x7f and chr(c) not in '"\\()' else "?" for c in raw)
