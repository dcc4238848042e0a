# Stub of the optional C extension pks/route/_keytable.c (built by ``python -m pks.accel``);
# the same interface as the pure-Python pks.route.keytable.KeyTable.
from typing import Generic, TypeVar

V = TypeVar("V")

class KeyTable(Generic[V]):
    def __init__(self, mapping: dict[str, V]) -> None: ...
    def get(self, subject: str, length: int = -1) -> V | None:
        """The value of key ``subject[:length]`` (``subject`` when ``length`` < 0), or None."""
    def __len__(self) -> int: ...
