"""The operator's card grants file (the setting ``cards_file``): one grant a line, as a driver's
``ev-wallet card add`` prints it (``evcard:<mandate id>:<salt hex>``), an optional ``# label`` after it;
blank lines and ``#`` comment lines are kept as they are.

A grant holds the salt of the driver's card references: with it the Core Client recognises the card's
idTag (and could try uids against the card's reference), so the file is written with mode 0600, whole
(a temporary file renamed over it: the daemon, which reads the file again when it changes, never sees
half a file). ``core-client cards add|list|remove`` (:mod:`core_client.cli.cards`) edit it through
:class:`GrantsFile`; the daemon reads it with :func:`read_grants`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from core_client.errors import CoreClientError
from ev_network.errors import EVNetworkError
from ev_network.mandates import format_grant, parse_grant

log = logging.getLogger("core_client.chain")


class GrantError(CoreClientError):
    """A grant that cannot be added or removed, or a grants file that cannot be read or written."""


@dataclass(frozen=True)
class Grant:
    """One line of the grants file that holds a grant."""

    mandate_id: int
    salt: bytes
    label: str = ""

    @property
    def text(self) -> str:
        return format_grant(self.mandate_id, self.salt)

    @property
    def line(self) -> str:
        return f"{self.text}  # {self.label}" if self.label else self.text


def parse_line(line: str) -> Grant | None:
    """The grant on a line (None: blank or comment); EVNetworkError if it is not a grant."""
    text, _, comment = line.partition("#")
    if not text.strip():
        return None
    mandate_id, salt = parse_grant(text)
    return Grant(mandate_id, salt, comment.strip())


def read_grants(path: Path) -> dict[int, bytes]:
    """mandate id -> salt, from a grants file (a bad line is logged and skipped)."""
    grants: dict[int, bytes] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            grant = parse_line(line)
        except EVNetworkError as error:
            log.warning("%s line %d skipped: %s", path, number, error)
            continue
        if grant is not None:
            grants[grant.mandate_id] = grant.salt
    return grants


class GrantsFile:
    """The grants file at ``path``, edited line by line (comments and order kept)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            raise GrantError(f"cannot read the grants file {self.path}: {error}") from None

    def grants(self) -> list[Grant]:
        """The grants in the file; GrantError naming the first line that is not one."""
        grants = []
        for number, line in enumerate(self._lines(), 1):
            try:
                grant = parse_line(line)
            except EVNetworkError as error:
                raise GrantError(f"{self.path} line {number}: {error}") from None
            if grant is not None:
                grants.append(grant)
        return grants

    def add(self, text: str, label: str = "") -> Grant | None:
        """Add the grant ``text`` (None: the file has it already); GrantError if it is not a grant, or if
        its mandate is granted with another salt."""
        if "\n" in label or "#" in label:
            raise GrantError("a label is one line without '#'")
        try:
            mandate_id, salt = parse_grant(text)
        except EVNetworkError as error:
            raise GrantError(str(error)) from None
        for grant in self.grants():
            if grant.mandate_id == mandate_id:
                if grant.salt == salt:
                    return None
                raise GrantError(
                    f"mandate {mandate_id} is granted already with another salt: `core-client cards remove "
                    f"{mandate_id}` first if the driver linked the card again"
                )
        grant = Grant(mandate_id, salt, label.strip())
        self._write([*self._lines(), grant.line])
        return grant

    def remove(self, mandate_id: int) -> Grant:
        """Remove the grant of ``mandate_id``; GrantError if the file has none."""
        grants = self.grants()  # the file is checked whole before it is rewritten
        found = next((g for g in grants if g.mandate_id == mandate_id), None)
        if found is None:
            raise GrantError(f"no grant of mandate {mandate_id} in {self.path} (`core-client cards list` shows them)")
        self._write([line for line in self._lines() if _mandate_of(line) != mandate_id])
        return found

    def _write(self, lines: list[str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("".join(f"{line}\n" for line in lines))
            os.chmod(tmp, 0o600)  # a tmp file left by an earlier run keeps its mode otherwise
            tmp.replace(self.path)
        except OSError as error:
            raise GrantError(f"cannot write the grants file {self.path}: {error}") from None


def _mandate_of(line: str) -> int | None:
    try:
        grant = parse_line(line)
    except EVNetworkError:
        return None
    return None if grant is None else grant.mandate_id
