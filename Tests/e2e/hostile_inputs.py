"""What test_hostile_client.py sends: protobuf wire-format payloads built by hand, and hostile
strings with the places in a request where each goes.

Nothing here talks to the driver. Requests are python-protobuf messages from the csi_pb2 module the
`csi` fixture generates; payloads are bytes, sent with grpc's generic unary_unary (no serializer), so
that they can be anything: undecodable, oversized, or carrying invalid UTF-8 that python-protobuf
would refuse to put into a string field.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from google.protobuf import descriptor as _descriptor
from google.protobuf.message import DecodeError

VARINT, I64, LEN, START_GROUP, END_GROUP, I32 = 0, 1, 2, 3, 4, 5
STRING = _descriptor.FieldDescriptor.TYPE_STRING
MESSAGE = _descriptor.FieldDescriptor.TYPE_MESSAGE


def is_repeated(field) -> bool:
    """Whether a field is repeated (protobuf 7 dropped FieldDescriptor.label for this)."""
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == field.LABEL_REPEATED


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def length_delimited(field: int, payload: bytes) -> bytes:
    return tag(field, LEN) + varint(len(payload)) + payload


def padded_to(size: int, prefix: bytes = b"") -> bytes:
    """`prefix` and one unknown length-delimited field (number 4242), `size` bytes in all: a message
    every request type decodes (unknown fields are kept, not refused)."""
    budget = size - len(prefix) - len(tag(4242, LEN))
    bodies = [body for body in range(max(0, budget - 10), budget) if len(varint(body)) + body == budget]
    assert bodies, f"no unknown field fills exactly {size} bytes after a {len(prefix)}-byte prefix"
    payload = prefix + tag(4242, LEN) + varint(bodies[0]) + b"u" * bodies[0]
    assert len(payload) == size, (len(payload), size)
    return payload


def decodes(message_class, payload: bytes) -> bool:
    """Whether python-protobuf (upb) parses `payload` as `message_class`: an independent opinion
    on which payloads are well-formed."""
    try:
        message_class.FromString(payload)
        return True
    except (DecodeError, ValueError, RuntimeError):
        return False


# --- A well-formed request with every field set (to be truncated and corrupted).

def sample_message(message_class, depth: int = 0):
    """An instance of `message_class` with every field set to a small valid value."""
    message = message_class()
    fill(message, depth)
    return message


def fill(message, depth: int):
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            target = getattr(message, field.name)
            if value_field.type == MESSAGE:
                fill(target["k"], depth + 1)
            else:
                target["k"] = sample_scalar(value_field)
        elif field.type == MESSAGE:
            if depth >= 6:
                continue
            if is_repeated(field):
                fill(getattr(message, field.name).add(), depth + 1)
            else:
                sub = getattr(message, field.name)
                sub.SetInParent()
                fill(sub, depth + 1)
        elif is_repeated(field):
            getattr(message, field.name).append(sample_scalar(field))
        else:
            setattr(message, field.name, sample_scalar(field))


def sample_scalar(field):
    kind = _descriptor.FieldDescriptor
    if field.type == kind.TYPE_STRING:
        return "x"
    if field.type == kind.TYPE_BYTES:
        return b"x"
    if field.type == kind.TYPE_BOOL:
        return True
    if field.type in (kind.TYPE_FLOAT, kind.TYPE_DOUBLE):
        return 1.5
    if field.type == kind.TYPE_ENUM:
        return field.enum_type.values[-1].number
    return 1


@dataclass(frozen=True)
class Payload:
    name: str
    data: bytes
    # True: built to be undecodable (the driver must say INVALID_ARGUMENT); False: well-formed;
    # None: decided by python-protobuf's parser (random bytes, truncations).
    malformed: bool | None


def wire_payloads(message_class, seed: int) -> list[Payload]:
    """Garbage for one request type: random bytes, truncated valid messages, wrong and invalid wire
    types, huge length prefixes, overlong varints, invalid UTF-8, a corrupt nested message, and the
    empty message (a valid request with every field unset)."""
    descriptor = message_class.DESCRIPTOR
    rich = sample_message(message_class).SerializeToString() + length_delimited(4242, b"unknown field")
    rng = random.Random(f"{descriptor.full_name}/{seed}")
    payloads = [
        Payload("empty message", b"", False),
        *(Payload(f"random bytes #{n} ({size} B)", rng.randbytes(size), None)
          for n, size in enumerate((1, 7, 64, 1000))),
        Payload("valid message truncated by one byte", rich[:-1], True),
        Payload("valid message truncated in the middle", rich[: len(rich) // 2], None),
        Payload("invalid wire type 6", tag(1, 6) + b"\x00" * 8, True),
        Payload("invalid wire type 7", tag(2, 7) + b"\x00" * 8, True),
        Payload("field number 0", tag(0, VARINT) + b"\x01", None),
        Payload("end group without a start", tag(5, END_GROUP), True),
        Payload("group never ended", tag(5, START_GROUP) + tag(1, VARINT) + b"\x01", True),
        Payload("length prefix 2^31-1", tag(1, LEN) + varint(2**31 - 1) + b"abc", True),
        Payload("length prefix 2^64-1", tag(1, LEN) + varint(2**64 - 1) + b"abc", True),
        Payload("11-byte varint", tag(1, VARINT) + b"\xff" * 10 + b"\x01", True),
    ]
    if descriptor.fields:
        first = descriptor.fields[0]
        if first.type in (STRING, MESSAGE, _descriptor.FieldDescriptor.TYPE_BYTES) or \
                is_repeated(first):
            wrong = tag(first.number, I32) + b"\x01\x02\x03\x04"
        else:
            wrong = tag(first.number, LEN) + varint(3) + b"abc"
        # Parsers differ: upb keeps a field with the wrong wire type as unknown, SwiftProtobuf
        # refuses it. Either is fine; an answer is not.
        payloads.append(Payload(f"wrong wire type for field {first.name}", wrong, None))
    strings = [f for f in descriptor.fields if f.type == STRING]
    if strings:
        payloads.append(Payload(f"invalid UTF-8 in {strings[0].name}",
                                length_delimited(strings[0].number, b"\xff\xfe\xc3\x28"), True))
    messages = [f for f in descriptor.fields if f.type == MESSAGE]
    if messages:
        payloads.append(Payload(f"corrupt nested message in {messages[0].name}",
                                length_delimited(messages[0].number, b"\xff\xff\xff"), True))
        payloads.append(Payload(f"length prefix past the end of nested {messages[0].name}",
                                length_delimited(messages[0].number, tag(1, LEN) + varint(50) + b"ab"), True))
    return payloads


# --- Hostile strings.

class Raw(bytes):
    """A hostile value that is not valid UTF-8: sent as these bytes in place of a placeholder of the
    same length (python-protobuf refuses to serialize it)."""


INVALID_UTF8 = Raw(b"\xff\xfe\xc3\x28")
PLACEHOLDER = "\x7fQz\x7f"  # as long as INVALID_UTF8; appears in no request otherwise
assert len(PLACEHOLDER.encode()) == len(INVALID_UTF8)


def hostile_strings(token: str) -> dict[str, str | Raw]:
    """name -> value. A payload that would run a command touches /tmp/pwned-<token>-<n>, or a file of
    that name in the driver's working directory: the test looks for both afterwards."""
    pwned = f"/tmp/pwned-{token}"
    return {
        "/proc": "/proc",
        "/": "/",
        "..": "..",
        "a/../b": "a/../b",
        "empty": "",
        "5,000 bytes": "h" * 5000,
        "100,000 bytes": "H" * 100_000,
        "NUL inside": "a\x00b",
        "NUL alone": "\x00",
        "invalid UTF-8": INVALID_UTF8,
        "shell ;": f"x; touch {pwned}-semicolon",
        "shell $()": f"$(touch {pwned}-subst)",
        "shell backticks": f"`touch {pwned}-backtick`",
        "shell |": f"x | touch {pwned}-pipe",
        "shell &": f"x & touch {pwned}-amp",
        "shell newline": f"x\ntouch {pwned}-newline",
        "shell, relative": f"$(touch pwned-{token}-relative)",
        "commas and =": f"ro,log-file={pwned}-comma,volfile-server=203.0.113.9",
        "key=value": f"log-file={pwned}-equals",
        "format string": "%s%s%s%n%x%p",
        "forged log line": "x\r\n2026-01-01T00:00:00.000Z critical forged line rpc.status=OK",
        "U+2028 and RTL override": "a\u2028b\u202ec",
    }


def hostile_paths(kubelet: str, token: str) -> dict[str, str | Raw]:
    """Paths that a request field holding a path may carry, beyond the raw hostile strings."""
    return {
        "under the kubelet dir, with $()": f"{kubelet}/pods/$(touch /tmp/pwned-{token}-path)/mount",
        "under the kubelet dir, with ;": f"{kubelet}/pods/x;touch /tmp/pwned-{token}-pathsemi/mount",
        "under the kubelet dir, with a newline": f"{kubelet}/pods/x\ny/mount",
        "under the kubelet dir, with a NUL": f"{kubelet}/pods/x\x00/proc",
        "under the kubelet dir, with invalid UTF-8": f"{kubelet}/pods/{PLACEHOLDER}/mount",
        "under the kubelet dir, with a comma": f"{kubelet}/pods/a,log-file=/tmp/pwned-{token}-pathcomma/mount",
        "'..' out of the kubelet dir": f"{kubelet}/pods/../../outside",
        "the kubelet dir itself": kubelet,
        "5,000 bytes under the kubelet dir": f"{kubelet}/pods/" + "p" * 5000,
        "a 300-byte component under the kubelet dir": f"{kubelet}/pods/" + "c" * 300 + "/mount",
        "/proc/self/root/ and the kubelet dir": f"/proc/self/root{kubelet}/pods/x/mount",
    }


# --- Where strings go.

SINGLE, ELEMENT, KEY, VALUE = "single", "element", "key", "value"


@dataclass(frozen=True)
class Slot:
    """One place for a string in a request: a path of (field name, kind) steps. The last step is
    the string: a singular field, an element of a repeated field, or a map's key or a map value."""
    steps: tuple[tuple[str, str], ...]

    @property
    def field(self) -> str:
        return self.steps[-1][0]

    def __str__(self):
        parts = []
        for name, kind in self.steps:
            parts.append({SINGLE: name, ELEMENT: f"{name}[]", KEY: f"{name}{{key}}", VALUE: f"{name}{{value}}"}[kind])
        return ".".join(parts)


def string_slots(descriptor, prefix=(), depth=0):
    """Every place a string can go in a message of `descriptor`, nested messages included."""
    for field in descriptor.fields:
        repeated = is_repeated(field)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry = field.message_type
            if entry.fields_by_name["key"].type == STRING:
                yield Slot(prefix + ((field.name, KEY),))
            if entry.fields_by_name["value"].type == STRING:
                yield Slot(prefix + ((field.name, VALUE),))
        elif field.type == STRING:
            yield Slot(prefix + ((field.name, ELEMENT if repeated else SINGLE),))
        elif field.type == MESSAGE and depth < 6:
            yield from string_slots(field.message_type, prefix + ((field.name, ELEMENT if repeated else SINGLE),),
                                    depth + 1)


def with_value(base, slot: Slot, value: str, map_key: str | None = None, key_value: str = "v"):
    """A copy of `base` with `value` at `slot` (in the map entry `map_key` for a VALUE slot; a KEY
    slot adds the entry value -> key_value)."""
    message = type(base)()
    message.CopyFrom(base)
    target = message
    for name, kind in slot.steps[:-1]:
        if kind == ELEMENT:
            items = getattr(target, name)
            target = items[0] if len(items) else items.add()
        else:
            target = getattr(target, name)
            target.SetInParent()
    name, kind = slot.steps[-1]
    if kind == SINGLE:
        setattr(target, name, value)
    elif kind == ELEMENT:
        getattr(target, name).append(value)
    elif kind == KEY:
        getattr(target, name)[value] = key_value
    else:
        getattr(target, name)[map_key] = value
    return message


def encode(message, raw: Raw | None = None) -> bytes:
    """`message` serialized, with PLACEHOLDER replaced by `raw` (same length: no length prefix changes)."""
    data = message.SerializeToString()
    if raw is None:
        return data
    placeholder = PLACEHOLDER.encode()
    assert data.count(placeholder) == 1, "the placeholder must occur exactly once"
    return data.replace(placeholder, bytes(raw))


def substitute(template: str | Raw) -> tuple[str, Raw | None]:
    """(a string to put into the message, the raw bytes to swap in for it afterwards, if any)."""
    if isinstance(template, Raw):
        return PLACEHOLDER, template
    if PLACEHOLDER in template:
        return template, INVALID_UTF8
    return template, None
