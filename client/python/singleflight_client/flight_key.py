"""The x-flight-key routing header, as the C++ and Node clients compute it."""

FLIGHT_KEY_HEADER = "x-flight-key"

_FNV64_OFFSET_BASIS = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_UINT64_MASK = (1 << 64) - 1


def flight_key(fetcher: str, key: str) -> str:
    """Returns the x-flight-key value of (fetcher, key).

    FNV-1a 64 over the UTF-8 bytes of fetcher, one 0x00 byte, and the UTF-8
    bytes of key, as 16 lower-case hex digits. The fetcher is hashed as sent:
    "" (the server's default) and the default's name hash differently.
    """
    value = _FNV64_OFFSET_BASIS
    for byte in fetcher.encode() + b"\0" + key.encode():
        value = ((value ^ byte) * _FNV64_PRIME) & _UINT64_MASK
    return f"{value:016x}"
