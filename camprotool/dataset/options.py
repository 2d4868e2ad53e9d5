"""How a dataset's captures are decoded: the options its manifest records.

Why recorded: a set decoded with another dialect, other ports or revealed
passwords holds other rows, so a rerun with different options decodes it
again instead of calling it up to date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from camprotool.protocol.dialect import Dialect


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """``read_capture``'s decoding arguments, in a form that pickles and compares."""

    dialect: str = "auto"
    ports: tuple[int, ...] | None = None
    reveal_passwords: bool = False

    @classmethod
    def make(cls, dialect: Dialect | str = "auto", ports: Iterable[int] | int | None = None,
             reveal_passwords: bool = False) -> DecodeOptions:
        """Check and normalise the arguments (a bad dialect fails here, before any work)."""
        if dialect in (None, "auto"):
            text = "auto"
        else:
            text = str(dialect if isinstance(dialect, Dialect) else Dialect.parse(dialect))
        if ports is None:
            wanted = None
        else:
            wanted = tuple(sorted({int(p) for p in ([ports] if isinstance(ports, int)
                                                    else ports)}))
            if any(not 0 < p < 65536 for p in wanted):
                raise ValueError(f"ports: {list(wanted)} are not all within 1-65535")
        return cls(text, wanted, bool(reveal_passwords))

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["ports"] = None if self.ports is None else list(self.ports)
        return d
