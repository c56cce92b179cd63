"""Plausible tier account data for the Connect simulator: companies, addresses, contacts, tax ids.

Deterministic for a given `random.Random`. Names and places include non-ASCII letters on purpose
(München, Lucía, Zoë) so the CRM side sees real-world text; e-mail domains use `.example`.
"""

from __future__ import annotations

import functools
import random
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from syncd.sim.connect_model import AccountData, Contact, Party

# code, db, phone prefix, [(city, state, area code)], streets, postal format, tax id format,
# legal forms. Formats: `9` a digit, `A` an upper-case letter, anything else literal.
_Country = tuple[str, str, str, list[tuple[str, str, str]], list[str], str, str, list[str]]
_COUNTRIES: list[_Country] = [
    ("DE", "EU", "+49", [("Berlin", "Berlin", "30"), ("Hamburg", "Hamburg", "40"),
                         ("München", "Bayern", "89"), ("Köln", "Nordrhein-Westfalen", "221")],
     ["Lindenstraße", "Hauptstraße", "Schillerstraße", "Am Gartenweg"], "99999",
     "DE999999999", ["GmbH", "AG", "KG"]),
    ("ES", "EU", "+34", [("Madrid", "Madrid", "91"), ("Barcelona", "Cataluña", "93"),
                         ("Valencia", "Comunidad Valenciana", "96"),
                         ("Sevilla", "Andalucía", "95")],
     ["Calle Mayor", "Avenida de la Constitución", "Calle de Alcalá", "Paseo de Gracia"], "99999",
     "ESB99999999", ["S.L.", "S.A."]),
    ("FR", "EU", "+33", [("Paris", "Île-de-France", "1"), ("Lyon", "Auvergne-Rhône-Alpes", "4"),
                         ("Lille", "Hauts-de-France", "3")],
     ["Rue de la Paix", "Avenue Jean Jaurès", "Boulevard Voltaire"], "99999", "FR99999999999",
     ["SAS", "SARL"]),
    ("GB", "EU", "+44", [("London", "England", "20"), ("Manchester", "England", "161"),
                         ("Edinburgh", "Scotland", "131")],
     ["High Street", "Station Road", "Church Lane"], "AA9 9AA", "GB999999999", ["Ltd", "PLC"]),
    ("NL", "EU", "+31", [("Amsterdam", "Noord-Holland", "20"), ("Rotterdam", "Zuid-Holland", "10")],
     ["Keizersgracht", "Damrak", "Coolsingel"], "9999 AA", "NL999999999B01", ["B.V."]),
    ("IT", "EU", "+39", [("Milano", "Lombardia", "02"), ("Roma", "Lazio", "06")],
     ["Via Roma", "Corso Italia", "Via Garibaldi"], "99999", "IT99999999999",
     ["S.r.l.", "S.p.A."]),
    ("US", "US", "+1", [("New York", "NY", "212"), ("Austin", "TX", "512"),
                        ("Seattle", "WA", "206"), ("Chicago", "IL", "312")],
     ["Main Street", "Oak Avenue", "Market Street", "5th Avenue"], "99999", "99-9999999",
     ["Inc.", "LLC", "Corp."]),
    ("JP", "JP", "+81", [("Tokyo", "Tokyo", "3"), ("Osaka", "Osaka", "6")],
     ["Chiyoda 1-chome", "Umeda 2-chome"], "999-9999", "T9999999999999", ["K.K.", "G.K."]),
    ("AU", "AU", "+61", [("Sydney", "NSW", "2"), ("Melbourne", "VIC", "3")],
     ["George Street", "Collins Street"], "9999", "99999999999", ["Pty Ltd"]),
]  # fmt: skip
_WEIGHTS = [20, 12, 10, 12, 6, 8, 20, 5, 7]
_BRANDS = [
    "Northwind", "Blue River", "Contoso", "Fabrikam", "Litware", "Adatum", "Tailspin",
    "Wide World", "Coho", "Alpine", "Granite", "Silver Oak", "Red Maple", "Harbor", "Summit",
    "Lakeside", "Nimbus", "Vertex", "Orion", "Polar", "Cedar", "Aurora", "Helix", "Quantum",
    "Sterling", "Evergreen", "Iron Bridge", "Golden Gate", "Bright Path", "Nova",
]  # fmt: skip
_TRADES = [
    "Analytics", "Logistics", "Consulting", "Systems", "Foods", "Media", "Labs", "Partners",
    "Trading", "Solutions", "Networks", "Health", "Design", "Energy", "Robotics", "Textiles",
    "Studios", "Ventures", "Software", "Works",
]  # fmt: skip
_FIRST = [
    "Miriam", "Jonas", "Lucía", "Javier", "Chloé", "Mathieu", "Olivia", "James", "Sofia",
    "Marco", "Hana", "Kenji", "Emma", "Noah", "Zoë", "Björn", "Ana", "Pedro", "Aoife", "Liam",
    "Priya", "Arjun", "Mei", "Wei", "Łukasz", "Agnieszka",
]  # fmt: skip
_LAST = [
    "Kessler", "Müller", "García", "Fernández", "Dubois", "Martin", "Smith", "Johnson", "Rossi",
    "Bianchi", "Tanaka", "Sato", "Brown", "Wilson", "O'Brien", "van Dijk", "de Vries", "Nowak",
    "Kowalski", "Andersson", "Silva", "Costa", "Singh", "Chen", "Li", "Murphy",
]  # fmt: skip
_T = TypeVar("_T")
_LINE2 = ["Suite 200", "3. OG", "Floor 4", "Unit 12", "Building B", "Piso 2", "Bureau 5"]


@functools.lru_cache(maxsize=4096)
def ascii_slug(text: str, sep: str = "-") -> str:
    """`"Blue River Müller"` -> `"blue-river-muller"`."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = "".join(c if c.isalnum() else " " for c in plain.lower()).split()
    return sep.join(words)


@functools.lru_cache(maxsize=64)
def _segments(pattern: str) -> tuple[tuple[str, int, str], ...]:
    """`"AA9 9AA"` -> runs of (`9` | `A` | literal, length, text)."""
    runs: list[tuple[str, int, str]] = []
    for c in pattern:
        kind = c if c in "9A" else ""
        if runs and runs[-1][0] == kind:
            prev = runs[-1]
            runs[-1] = (kind, prev[1] + 1, prev[2] + c)
        else:
            runs.append((kind, 1, c))
    return tuple(runs)


_COUNTRY_DRAW = [i for i, weight in enumerate(_WEIGHTS) for _ in range(weight)]


class Faker:
    """Draws account data from one seeded random generator.

    Draws use `random()` directly (not `randrange`/`choice`): seeding 100,000 accounts makes
    millions of them, and the slight bias does not matter here.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._random = rng.random

    def below(self, n: int) -> int:
        return int(self._random() * n)

    def pick(self, items: Sequence[_T]) -> _T:
        return items[int(self._random() * len(items))]

    def _fill(self, pattern: str) -> str:
        out = []
        for kind, length, text in _segments(pattern):
            if kind == "9":
                out.append(str(self.below(10**length)).zfill(length))
            elif kind == "A":
                out.append("".join(chr(65 + self.below(26)) for _ in range(length)))
            else:
                out.append(text)
        return "".join(out)

    def uuid4(self) -> str:
        bits = self.rng.getrandbits(128)
        bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
        bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def country(self) -> int:
        return self.pick(_COUNTRY_DRAW)

    def db(self, country: int) -> str:
        return _COUNTRIES[country][1]

    def company(self, country: int) -> str:
        # Interned: the same few thousand names recur across 100,000 accounts.
        legal = self.pick(_COUNTRIES[country][7])
        return sys.intern(f"{self.pick(_BRANDS)} {self.pick(_TRADES)} {legal}")

    def contact(self, country: int, company: str, city: str | None = None) -> Contact:
        """A contact at `company`; the phone's area code is the city's when it is known."""
        first, last = self.pick(_FIRST), self.pick(_LAST)
        brand = ascii_slug(company.rsplit(" ", 1)[0])
        email = f"{ascii_slug(first, '')}.{ascii_slug(last, '')}@{brand}.example"
        _, _, prefix, cities, *_ = _COUNTRIES[country]
        area = next((c[2] for c in cities if c[0] == city), None) or self.pick(cities)[2]
        return Contact(first, last, email, prefix, area, "555" + self._fill("9999"), "")

    def address(self, country: int) -> dict[str, str]:
        code, _, _, cities, streets, postal, _, _ = _COUNTRIES[country]
        city, state, _ = self.pick(cities)
        # connect-api.md §1: countries are seen in upper and lower case.
        return {
            "address_line1": sys.intern(f"{self.pick(streets)} {1 + self.below(199)}"),
            "address_line2": self.pick(_LINE2) if self._random() < 0.3 else "",
            "city": city,
            "state": state,
            "postal_code": self._fill(postal),
            "country": code.lower() if self._random() < 0.02 else code,
        }

    def account(
        self,
        *,
        country: int,
        type: str,
        parent_id: str | None,
        external_id: str,
        at: datetime,
        by: Party,
    ) -> AccountData:
        """Version 1 of a new account."""
        name = self.company(country)
        address = self.address(country)
        return AccountData(
            version=1,
            name=name,
            type=type,
            external_id=external_id,
            external_uid=self.uuid4(),
            tax_id=self._fill(_COUNTRIES[country][6]),
            environment="production",
            parent_id=parent_id,
            contact=self.contact(country, name, address["city"]),
            updated_at=at,
            updated_by=by,
            **address,
        )

    def change(self, data: AccountData) -> dict[str, Any]:
        """The fields a plausible provider-side edit sets (a move, a new contact, a rename...)."""
        country = _country_of(data.country)
        roll = self._random()
        if roll < 0.4:
            address = self.address(country)
            address.update(city=data.city, state=data.state, country=data.country)
            return dict(address)
        if roll < 0.65:
            return {"contact": self.contact(country, data.name, data.city)}
        if roll < 0.8:
            return {"contact": replace(data.contact, phone_number="555" + self._fill("9999"))}
        if roll < 0.9:
            return {"tax_id": self._fill(_COUNTRIES[country][6])}
        head, legal = data.name.rsplit(" ", 1) if " " in data.name else (data.name, "")
        return {"name": f"{head} Group {legal}".strip()}


def _country_of(code: str) -> int:
    for index, entry in enumerate(_COUNTRIES):
        if entry[0] == code.upper():
            return index
    return 0
