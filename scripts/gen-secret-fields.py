#!/usr/bin/env python3
"""Generate the CSISecretBearing conformances (csi+Secrets.swift) from a descriptor set.

The CSI spec marks credential-carrying fields with the custom field option
`csi_secret`. This reads that option from a `protoc --descriptor_set_out
--include_imports` file, so the log sanitizer follows the proto instead of a
hand-kept list, and emits Swift that redacts those fields in place.

Only the Python standard library is used: the few parts of descriptor.proto we
need are decoded by hand below, which keeps the generator free of a protobuf
runtime whose version would otherwise have to be pinned for CI.

Handled secret fields: map<string, string>, string, repeated string. A message
that reaches a secret through a message-typed field (singular, repeated or in a
oneof) is made CSISecretBearing too and redacts recursively. Anything else
(bytes, a map whose values are secret-bearing messages, ...) stops the
generator with an error rather than producing a sanitizer with a hole in it.

Usage:
  gen-secret-fields.py --descriptor-set csi.pb --proto csi.proto \
      --swift-source Sources/CSIProto/csi.pb.swift --output csi+Secrets.swift
"""

import argparse
import re
import sys

PLACEHOLDER = "<redacted>"

# FieldDescriptorProto.Type / .Label values used here (descriptor.proto).
TYPE_STRING = 9
TYPE_MESSAGE = 11
LABEL_REPEATED = 3


class GeneratorError(Exception):
    pass


# --- Minimal protobuf wire decoding -----------------------------------------


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise GeneratorError("truncated varint in descriptor set")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode(buf):
    """Decodes one message into {field_number: [values]} (ints or bytes)."""
    fields = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(buf, pos)
        elif wire_type == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + length]), pos + length
        elif wire_type == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise GeneratorError(f"unsupported wire type {wire_type} in descriptor set")
        fields.setdefault(number, []).append(value)
    if pos != len(buf):
        raise GeneratorError("truncated field in descriptor set")
    return fields


def _str(fields, number, default=""):
    values = fields.get(number)
    return values[-1].decode("utf-8") if values else default


def _int(fields, number, default=None):
    values = fields.get(number)
    return values[-1] if values else default


def _bool_option(options_bytes, number):
    """True when an options message sets the bool extension `number`."""
    return bool(options_bytes) and bool(_int(decode(options_bytes), number, 0))


# --- Descriptor model ---------------------------------------------------------


class Field:
    def __init__(self, raw):
        f = decode(raw)
        self.name = _str(f, 1)
        self.number = _int(f, 3)
        self.label = _int(f, 4)
        self.type = _int(f, 5)
        self.type_name = _str(f, 6)
        self.oneof_index = _int(f, 9)
        self.proto3_optional = bool(_int(f, 17, 0))
        self.options = f.get(8, [b""])[-1]

    @property
    def real_oneof(self):
        return self.oneof_index is not None and not self.proto3_optional


class Message:
    def __init__(self, raw, scope, swift_prefix, swift_parent=None):
        m = decode(raw)
        self.name = _str(m, 1)
        self.full_name = f"{scope}.{self.name}"
        # swift-protobuf: top-level types get the package prefix, nested ones hang off their parent.
        self.swift_name = f"{swift_parent}.{self.name}" if swift_parent else swift_prefix + self.name
        self.fields = [Field(x) for x in m.get(2, [])]
        self.oneofs = [_str(decode(x), 1) for x in m.get(8, [])]
        self.nested = [Message(x, self.full_name, swift_prefix, self.swift_name) for x in m.get(3, [])]
        options = decode(m.get(7, [b""])[-1])
        self.map_entry = bool(_int(options, 7, 0))

    def walk(self):
        yield self
        for nested in self.nested:
            yield from nested.walk()


def swift_type_prefix(package):
    """`csi.v1` -> `Csi_V1_`, swift-protobuf's default type prefix."""
    return "".join(part[:1].upper() + part[1:] + "_" for part in package.split(".")) if package else ""


def lower_camel(name):
    """swift-protobuf's property naming for plain snake_case names (NamingUtils.toLowerCamelCase)."""
    if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", name):
        raise GeneratorError(f"field name '{name}' is not plain snake_case; teach lower_camel() its Swift name")
    words = re.findall(r"[a-z]+|[0-9]+", name)
    out = words[0]
    for word in words[1:]:
        out += word.upper() if word in ("id", "url", "http", "https") else word[:1].upper() + word[1:]
    return out


# --- Generation ---------------------------------------------------------------


def load(descriptor_set_path, proto_name):
    with open(descriptor_set_path, "rb") as f:
        files = [decode(raw) for raw in decode(f.read()).get(1, [])]
    messages = {}
    target = None
    for fd in files:
        package = _str(fd, 2)
        prefix = swift_type_prefix(package)
        tops = [Message(raw, f".{package}" if package else "", prefix) for raw in fd.get(4, [])]
        for top in tops:
            for message in top.walk():
                messages[message.full_name] = message
        if _str(fd, 1) == proto_name:
            target = (fd, tops)
    if target is None:
        raise GeneratorError(f"{proto_name} is not in {descriptor_set_path}")
    fd, tops = target
    secret_number = None
    for raw in fd.get(7, []):
        ext = decode(raw)
        if _str(ext, 1) == "csi_secret" and _str(ext, 2) == ".google.protobuf.FieldOptions":
            secret_number = _int(ext, 3)
    if secret_number is None:
        raise GeneratorError(f"{proto_name} declares no `extend google.protobuf.FieldOptions {{ bool csi_secret }}`")
    own = [m for top in tops for m in top.walk() if not m.map_entry]
    return messages, own, secret_number


def classify_secret(message, field, messages):
    where = f"{message.full_name[1:]}.{field.name}"
    if field.real_oneof:
        raise GeneratorError(f"{where}: secret field inside a oneof is not supported")
    if field.label == LABEL_REPEATED and field.type == TYPE_MESSAGE:
        entry = messages.get(field.type_name)
        if entry is not None and entry.map_entry:
            key, value = sorted(entry.fields, key=lambda f: f.number)
            if key.type == TYPE_STRING and value.type == TYPE_STRING:
                return "map"
            raise GeneratorError(f"{where}: secret map must be map<string, string>")
    if field.type == TYPE_STRING:
        return "repeated_string" if field.label == LABEL_REPEATED else "string"
    raise GeneratorError(f"{where}: secret field of type {field.type} is not supported; extend gen-secret-fields.py")


def plan(messages, own, secret_number):
    """Returns [(message, [statement])] for every message that can carry a secret, in proto order."""
    direct = {}
    for message in own:
        for field in message.fields:
            if _bool_option(field.options, secret_number):
                direct.setdefault(message.full_name, []).append((field, classify_secret(message, field, messages)))

    # A message bears secrets if it holds a secret field or a message that does (fixpoint, so
    # nesting depth and cycles do not matter).
    bearing = set(direct)
    changed = True
    while changed:
        changed = False
        for message in own:
            if message.full_name in bearing:
                continue
            for field in message.fields:
                target = messages.get(field.type_name)
                if field.type != TYPE_MESSAGE or target is None:
                    continue
                if target.full_name in bearing or (
                    target.map_entry and any(f.type_name in bearing for f in target.fields)
                ):
                    bearing.add(message.full_name)
                    changed = True
                    break

    result = []
    for message in own:
        if message.full_name not in bearing:
            continue
        statements = []
        properties = []  # Swift property names the statements use, for check_against_swift()
        secret_fields = dict((f.number, kind) for f, kind in direct.get(message.full_name, []))
        for field in message.fields:
            prop = lower_camel(field.name)
            where = f"{message.full_name[1:]}.{field.name}"
            kind = secret_fields.get(field.number)
            count = len(statements)
            if kind == "map":
                statements.append(f"{prop} = {prop}.mapValues {{ _ in CSISecretFields.placeholder }}")
            elif kind == "string":
                statements.append(f"if !{prop}.isEmpty {{ {prop} = CSISecretFields.placeholder }}")
            elif kind == "repeated_string":
                statements.append(f"{prop} = {prop}.map {{ $0.isEmpty ? $0 : CSISecretFields.placeholder }}")
            elif field.type == TYPE_MESSAGE and field.type_name in bearing:
                if field.real_oneof:
                    oneof = lower_camel(message.oneofs[field.oneof_index])
                    properties.append(oneof)
                    statements.append(
                        f"if case .{prop}(var value)? = {oneof} {{ value.redactSecrets(); {oneof} = .{prop}(value) }}"
                    )
                elif field.label == LABEL_REPEATED:
                    statements.append(f"for index in {prop}.indices {{ {prop}[index].redactSecrets() }}")
                else:
                    has = "has" + prop[:1].upper() + prop[1:]
                    properties.append(has)
                    statements.append(f"if {has} {{ {prop}.redactSecrets() }}")
            elif field.type == TYPE_MESSAGE and messages.get(field.type_name) and messages[field.type_name].map_entry:
                if any(f.type_name in bearing for f in messages[field.type_name].fields):
                    raise GeneratorError(f"{where}: map with secret-bearing values is not supported")
            if len(statements) > count and not field.real_oneof:
                properties.append(prop)
        result.append((message, [f for f, _ in direct.get(message.full_name, [])], statements, properties))
    return result


def check_against_swift(planned, swift_source):
    """Fails if a name we computed does not exist in the protoc-gen-swift output."""
    with open(swift_source, encoding="utf-8") as f:
        text = f.read()
    for message, _, _, properties in planned:
        last = message.swift_name.rsplit(".", 1)[-1]
        if not re.search(rf"\bpublic (?:nonisolated )?struct {re.escape(last)}\b", text):
            raise GeneratorError(f"{message.swift_name} not found in {swift_source}: naming rule mismatch")
        for prop in properties:
            if not re.search(rf"\bpublic var {re.escape(prop)}\b", text):
                raise GeneratorError(f"property {prop} of {message.swift_name} not found in {swift_source}")


def render(planned, proto_name):
    out = [
        "// DO NOT EDIT.",
        "// swift-format-ignore-file",
        "//",
        f"// Generated by scripts/gen-secret-fields.py from the csi_secret options in proto/{proto_name}.",
        "// Regenerate with scripts/generate-proto.",
        "//",
        "// `nonisolated` as in csi.pb.swift, so the conformances stay usable from any isolation.",
        "",
        "/// A CSI message that can carry secrets: fields the proto marks `[(csi_secret) = true]`, or",
        "/// messages nested in it that do.",
        "///",
        "/// Log or echo a request only through a redacted copy:",
        "/// `var safe = request; safe.redactSecrets()`.",
        "public nonisolated protocol CSISecretBearing {",
        "    /// Replaces every secret value in place with `CSISecretFields.placeholder`.",
        "    ///",
        "    /// Keys of secret maps are kept so a log still shows which secrets were supplied; empty",
        "    /// secret strings stay empty so a log still shows that none was supplied.",
        "    mutating func redactSecrets()",
        "}",
        "",
        "/// The secret fields of the CSI messages, as read from the proto.",
        "public nonisolated enum CSISecretFields {",
        "    /// What a secret value is replaced with.",
        f'    public static let placeholder = "{PLACEHOLDER}"',
        "",
        "    /// Proto field names marked `csi_secret`, keyed by full proto message name.",
        "    public static let byMessage: [String: [String]] = [",
    ]
    for message, fields, _, _ in planned:
        if fields:
            names = ", ".join(f'"{f.name}"' for f in fields)
            out.append(f'        "{message.full_name[1:]}": [{names}],')
    out += ["    ]", "}"]
    for message, fields, statements, _ in planned:
        out += [
            "",
            f"nonisolated extension {message.swift_name}: CSISecretBearing {{",
            "    /// Redacts the secret fields in place; see `CSISecretBearing`.",
            "    public mutating func redactSecrets() {",
        ]
        out += [f"        {s}" for s in statements]
        out += ["    }", "}"]
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--descriptor-set", required=True, help="protoc --descriptor_set_out --include_imports file")
    parser.add_argument("--proto", required=True, help="name of the proto file in the set, e.g. csi.proto")
    parser.add_argument("--swift-source", help="protoc-gen-swift output to cross-check Swift names against")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    try:
        planned = plan(*load(args.descriptor_set, args.proto))
        if not planned:
            raise GeneratorError(f"no field in {args.proto} is marked csi_secret; refusing to emit an empty table")
        if args.swift_source:
            check_against_swift(planned, args.swift_source)
    except GeneratorError as error:
        print(f"gen-secret-fields: error: {error}", file=sys.stderr)
        return 1
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(render(planned, args.proto))
    return 0


if __name__ == "__main__":
    sys.exit(main())
