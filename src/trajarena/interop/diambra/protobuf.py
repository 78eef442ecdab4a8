"""DIAMBRA 2.2's ``EnvSettings`` protobuf message, decoded from its wire bytes without protobuf.

A ``.diambra`` file pickles ``diambra.engine.interface_pb2.EnvSettings`` as the message's standard
proto3 wire bytes; :func:`decode_env_settings` reads them with the message's schema written down
here (``diambra/engine/interface.proto`` of diambra-engine 2.2), so neither diambra nor protobuf is
imported. Proto3 rules apply: absent fields take their defaults (0, ``False``, ``""``, empty
lists, sub-messages with default fields), repeated scalars may be packed or not, unknown fields are
skipped, enum values are given by name (an unknown enum value stays a number). Anything else — a
truncated varint or field, a wire type that does not fit the field, invalid UTF-8, more bytes than
:data:`MAX_MESSAGE_BYTES` — raises :class:`~trajarena.errors.FormatError` saying where.

>>> fields = decode_env_settings(bytes.fromhex("0a05646f617070120408301040180620014201024a04080b1002"))
>>> fields["game_id"], fields["frame_shape"], fields["n_players"], fields["action_spaces"]
('doapp', {'h': 48, 'w': 64, 'c': 0}, 1, ['MULTI_DISCRETE'])
>>> fields["episode_settings"]["random_seed"], fields["episode_settings"]["difficulty"]
(11, 2)
"""

from __future__ import annotations

import struct
from typing import Any

from trajarena.errors import FormatError

__all__ = ["MAX_MESSAGE_BYTES", "ROLES", "SPACE_TYPES", "decode_env_settings"]

#: Largest EnvSettings message accepted (real ones are about 100 bytes).
MAX_MESSAGE_BYTES = 1 << 16

#: ``RamStatesCategories`` (DIAMBRA's ``Roles``): a player's role is P1 (2) or P2 (3).
ROLES = {0: "internal", 1: "common", 2: "P1", 3: "P2"}
#: ``SpaceTypes``: the action space of each agent is DISCRETE (1) or MULTI_DISCRETE (2).
SPACE_TYPES = {0: "BINARY", 1: "DISCRETE", 2: "MULTI_DISCRETE", 3: "BOX"}

# A schema maps a field number to (name, kind, repeated, sub-schema or enum names).
_Schema = dict[int, tuple[str, str, bool, Any]]
_ULTIMATE: _Schema = {1: ("dash", "int32", False, None), 2: ("evade", "int32", False, None),
                      3: ("bar", "int32", False, None)}
_PLAYER: _Schema = {
    1: ("role", "enum", False, ROLES), 2: ("characters", "string", True, None), 3: ("outfits", "int32", False, None),
    4: ("super_art", "int32", False, None), 5: ("fighting_style", "int32", False, None),
    6: ("ultimate_style", "message", False, _ULTIMATE), 7: ("speed_mode", "int32", False, None),
}
_EPISODE: _Schema = {
    1: ("random_seed", "int32", False, None), 2: ("difficulty", "int32", False, None),
    3: ("continue_game", "double", False, None), 4: ("show_final", "bool", False, None),
    5: ("tower", "int32", False, None), 6: ("player_settings", "message", True, _PLAYER),
}
_BUTTON: _Schema = {1: ("key", "string", False, None), 2: ("value", "string", False, None)}
_SYSTEM: _Schema = {
    1: ("buttons_cfg", "message", True, _BUTTON), 2: ("recording", "bool", False, None),
    3: ("emu_pipes_path", "string", False, None), 4: ("roms_path", "string", False, None),
    5: ("binary_path", "string", False, None), 6: ("sha256", "string", False, None), 7: ("render", "bool", False, None),
    8: ("lock_fps", "bool", False, None), 9: ("sound", "bool", False, None), 10: ("debug", "bool", False, None),
    11: ("cheats", "bool", False, None), 12: ("username", "string", False, None),
}
_FRAME: _Schema = {1: ("h", "int32", False, None), 2: ("w", "int32", False, None), 3: ("c", "int32", False, None)}
_ENV: _Schema = {
    1: ("game_id", "string", False, None), 2: ("frame_shape", "message", False, _FRAME),
    3: ("step_ratio", "int32", False, None), 4: ("n_players", "int32", False, None),
    5: ("disable_keyboard", "bool", False, None), 6: ("disable_joystick", "bool", False, None),
    7: ("rank", "int32", False, None), 8: ("action_spaces", "enum", True, SPACE_TYPES),
    9: ("episode_settings", "message", False, _EPISODE), 10: ("sys_settings", "message", False, _SYSTEM),
}
_DEFAULTS = {"int32": 0, "enum": 0, "bool": False, "string": "", "double": 0.0}
# the wire type each kind of field is written with (packed repeated scalars use 2 as well)
_WIRE = {"int32": 0, "enum": 0, "bool": 0, "double": 1, "string": 2, "message": 2}


def decode_env_settings(data: bytes) -> dict[str, Any]:
    """Decode the wire bytes of an ``interface.EnvSettings`` message into a dict of its fields.

    Args:
        data: the serialized message (proto3 wire format).

    Returns:
        Every field of the schema by name (defaults filled in), sub-messages as dicts, repeated
        fields as lists, enums by name; ``sys_settings.buttons_cfg`` as a ``{key: value}`` dict.

    Raises:
        FormatError: the bytes are not a valid encoding of the message (the message says where).
    """
    if not isinstance(data, bytes | bytearray):
        raise FormatError(f"EnvSettings must be bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise FormatError(f"EnvSettings holds {len(data)} bytes, more than the {MAX_MESSAGE_BYTES} accepted")
    fields = _decode(bytes(data), _ENV, "EnvSettings")
    fields["sys_settings"]["buttons_cfg"] = {b["key"]: b["value"] for b in fields["sys_settings"]["buttons_cfg"]}
    return fields


def _varint(data: bytes, i: int, where: str) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise FormatError(f"{where}: a varint runs past the end of the message (byte {i})")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift >= 70:
            raise FormatError(f"{where}: a varint longer than 10 bytes at byte {i}")


def _int32(value: int, where: str) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64  # negative int32 values are sent as 10-byte two's complement varints
    if not -(1 << 31) <= value < 1 << 31:
        raise FormatError(f"{where}: {value} does not fit an int32")
    return value


def _field(data: bytes, i: int, where: str) -> tuple[int, int, Any, int]:
    """Read one field: (number, wire type, raw value, next position)."""
    key, i = _varint(data, i, where)
    number, wire = key >> 3, key & 7
    if number == 0:
        raise FormatError(f"{where}: a field numbered 0 at byte {i} (not a protobuf message)")
    if wire == 0:
        value, i = _varint(data, i, where)
    elif wire in (1, 5):
        size = 8 if wire == 1 else 4
        if i + size > len(data):
            raise FormatError(f"{where}: field {number} runs past the end of the message")
        value, i = data[i:i + size], i + size
    elif wire == 2:
        size, i = _varint(data, i, where)
        if i + size > len(data):
            raise FormatError(f"{where}: field {number} declares {size} bytes, more than the message has left")
        value, i = data[i:i + size], i + size
    else:
        raise FormatError(f"{where}: field {number} has wire type {wire}, which proto3 messages do not use")
    return number, wire, value, i


def _decode(data: bytes, schema: _Schema, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    while i < len(data):
        number, wire, raw, i = _field(data, i, where)
        if number not in schema:
            continue  # an unknown field (a newer engine): skipped, as protobuf does
        name, kind, repeated, sub = schema[number]
        here = f"{where}.{name}"
        if repeated and wire == 2 and kind in ("int32", "enum", "bool"):
            values, j = [], 0
            while j < len(raw):
                v, j = _varint(raw, j, here)
                values.append(_scalar(kind, v, sub, here))
            out.setdefault(name, []).extend(values)
            continue
        if wire != _WIRE[kind]:
            raise FormatError(f"{here}: wire type {wire} does not fit a {kind} field")
        value = _decode(raw, sub, here) if kind == "message" else _scalar(kind, raw, sub, here)
        if repeated:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    for name, kind, repeated, sub in schema.values():
        if name not in out:
            out[name] = [] if repeated else _decode(b"", sub, where) if kind == "message" else \
                sub[0] if kind == "enum" else _DEFAULTS[kind]
    return out


def _scalar(kind: str, raw: Any, names: Any, where: str) -> Any:
    if kind == "int32":
        return _int32(raw, where)
    if kind == "enum":
        value = _int32(raw, where)
        return names.get(value, value)
    if kind == "bool":
        return raw != 0
    if kind == "double":
        return struct.unpack("<d", raw)[0]
    try:  # string
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{where}: a string that is not UTF-8 ({exc.reason} at byte {exc.start})") from None
