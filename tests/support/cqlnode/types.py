"""CQL data types: parsing a type from its CQL name, and the native protocol v4 encodings of types and values."""
from __future__ import annotations

import ipaddress
import struct
import uuid
from dataclasses import dataclass

# Option ids of the protocol's [option] type (native protocol v4, section 6).
_SIMPLE_TYPE_IDS = {
    "ascii": 0x0001, "bigint": 0x0002, "blob": 0x0003, "boolean": 0x0004, "double": 0x0007, "float": 0x0008,
    "int": 0x0009, "timestamp": 0x000B, "uuid": 0x000C, "text": 0x000D, "inet": 0x0010, "timeuuid": 0x000F,
}
_COLLECTION_IDS = {"list": 0x0020, "map": 0x0021, "set": 0x0022}
_ALIASES = {"varchar": "text"}


class InvalidType(ValueError):
    pass


@dataclass(frozen=True)
class CqlType:
    name: str
    params: tuple[CqlType, ...] = ()
    frozen: bool = False

    def __str__(self) -> str:
        if not self.params:
            return self.name
        inner = f"{self.name}<{', '.join(str(p) for p in self.params)}>"
        return f"frozen<{inner}>" if self.frozen else inner

    @property
    def is_collection(self) -> bool:
        return self.name in _COLLECTION_IDS

    def encode_spec(self) -> bytes:
        """The type as a protocol [option]."""
        if self.is_collection:
            return struct.pack(">H", _COLLECTION_IDS[self.name]) + b"".join(p.encode_spec() for p in self.params)
        return struct.pack(">H", _SIMPLE_TYPE_IDS[self.name])

    def serialize(self, value) -> bytes:
        name = self.name
        if name == "bigint":
            return struct.pack(">q", value)
        if name == "int":
            return struct.pack(">i", value)
        if name in ("text", "ascii"):
            return value.encode()
        if name == "boolean":
            return b"\x01" if value else b"\x00"
        if name == "timestamp":
            return struct.pack(">q", value)
        if name == "double":
            return struct.pack(">d", value)
        if name == "float":
            return struct.pack(">f", value)
        if name == "blob":
            return bytes(value)
        if name in ("uuid", "timeuuid"):
            return value.bytes
        if name == "inet":
            return ipaddress.ip_address(value).packed
        if name in ("list", "set"):
            items = sorted(value) if name == "set" else list(value)
            return struct.pack(">i", len(items)) + b"".join(_with_length(self.params[0].serialize(v)) for v in items)
        if name == "map":
            key_type, value_type = self.params
            parts = [struct.pack(">i", len(value))]
            for key in sorted(value):
                parts.append(_with_length(key_type.serialize(key)))
                parts.append(_with_length(value_type.serialize(value[key])))
            return b"".join(parts)
        raise InvalidType(f"cannot serialize {self}")

    def deserialize(self, data: bytes):
        name = self.name
        try:
            if name == "bigint" or name == "timestamp":
                return struct.unpack(">q", data)[0]
            if name == "int":
                return struct.unpack(">i", data)[0]
            if name in ("text", "ascii"):
                return data.decode()
            if name == "boolean":
                return data != b"\x00"
            if name == "double":
                return struct.unpack(">d", data)[0]
            if name == "float":
                return struct.unpack(">f", data)[0]
            if name == "blob":
                return bytes(data)
            if name in ("uuid", "timeuuid"):
                return uuid.UUID(bytes=data)
            if name == "inet":
                return str(ipaddress.ip_address(data))
            if name in ("list", "set", "map"):
                return self._deserialize_collection(data)
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            raise InvalidType(f"invalid {self} value: {exc}") from exc
        raise InvalidType(f"cannot deserialize {self}")

    def _deserialize_collection(self, data: bytes):
        count, offset = struct.unpack_from(">i", data)[0], 4
        items = []
        for _ in range(count * (2 if self.name == "map" else 1)):
            size = struct.unpack_from(">i", data, offset)[0]
            items.append(data[offset + 4: offset + 4 + size])
            offset += 4 + size
        if offset != len(data):
            raise InvalidType(f"trailing bytes in {self} value")
        if self.name == "map":
            key_type, value_type = self.params
            return {key_type.deserialize(k): value_type.deserialize(v) for k, v in zip(items[::2], items[1::2])}
        element = self.params[0]
        values = [element.deserialize(item) for item in items]
        return tuple(values) if self.name == "list" else frozenset(values)

    def from_literal(self, literal):
        """Convert a parsed CQL literal (str, int, float, bool, list, dict) to this type's value."""
        name = self.name
        if name in ("bigint", "int", "timestamp") and isinstance(literal, int) and not isinstance(literal, bool):
            return literal
        if name in ("text", "ascii") and isinstance(literal, str):
            return literal
        if name == "boolean" and isinstance(literal, bool):
            return literal
        if name in ("double", "float") and isinstance(literal, (int, float)) and not isinstance(literal, bool):
            return float(literal)
        if name == "list" and isinstance(literal, list):
            return tuple(self.params[0].from_literal(v) for v in literal)
        if name == "set" and isinstance(literal, (list, set)):
            return frozenset(self.params[0].from_literal(v) for v in literal)
        if name == "map" and isinstance(literal, dict):
            key_type, value_type = self.params
            return {key_type.from_literal(k): value_type.from_literal(v) for k, v in literal.items()}
        if name == "inet" and isinstance(literal, str):
            return str(ipaddress.ip_address(literal))
        raise InvalidType(f"invalid literal {literal!r} for type {self}")


def _with_length(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def parse_type(text: str) -> CqlType:
    """Parse a CQL type name such as ``bigint`` or ``frozen<list<bigint>>``."""
    parsed, rest = _parse_type(text.replace(" ", "").lower())
    if rest:
        raise InvalidType(f"unknown type {text!r}")
    return parsed


def _parse_type(text: str) -> tuple[CqlType, str]:
    name_end = len(text)
    for index, char in enumerate(text):
        if char in "<>,":
            name_end = index
            break
    name, rest = _ALIASES.get(text[:name_end], text[:name_end]), text[name_end:]
    if name == "frozen":
        inner, rest = _parse_params(rest, 1)
        return CqlType(inner[0].name, inner[0].params, frozen=True), rest
    if name in _COLLECTION_IDS:
        params, rest = _parse_params(rest, 2 if name == "map" else 1)
        return CqlType(name, tuple(params)), rest
    if name not in _SIMPLE_TYPE_IDS:
        raise InvalidType(f"unknown type {name!r}")
    return CqlType(name), rest


def _parse_params(text: str, count: int) -> tuple[list[CqlType], str]:
    if not text.startswith("<"):
        raise InvalidType("expected '<'")
    params, rest = [], text[1:]
    for position in range(count):
        param, rest = _parse_type(rest)
        params.append(param)
        expected = ">" if position == count - 1 else ","
        if not rest.startswith(expected):
            raise InvalidType(f"expected {expected!r}")
        rest = rest[1:]
    return params, rest
