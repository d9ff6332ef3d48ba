"""What video costs: a dated price table, and a task's cost estimated from it or rendered.

The table ships as package data (``sora_tasks/data/prices.csv``), each price with the date it was
seen and its source; :meth:`PriceTable.extended` lays a user's own entries over it. A price is
keyed by provider, model, resolution and audio. The provider is an adapter kind (``fal``,
``replicate``, ``runway``, ...) or the name a manager gives a provider, which wins; the model may
be a pattern. Where the request leaves the resolution or audio to the provider, the dearest
matching price is taken: an estimate that errs high keeps a budget safe.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

from ._exceptions import InvalidRequestError
from ._models import Task, TaskCost
from .providers._base import Provider

__all__ = ["Price", "PriceTable", "PriceTableError", "provider_kind"]

_COLUMNS = (
    "provider",
    "model",
    "resolution",
    "audio",
    "per_second",
    "per_job",
    "currency",
    "effective",
    "source",
)
# billed by the provider's compute time (Replicate's hardware-priced models): optional
_COMPUTE = "per_compute_second"
_PRICES = ("per_second", "per_job", _COMPUTE)
_ANY = "*"


class PriceTableError(InvalidRequestError):
    """A price table cannot be used: the message names the line and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Price:
    """One price, as seen at ``source`` on ``effective``: per second of video, per job, per
    second of the provider's compute time (billed by its reported usage), or a sum of these."""

    provider: str
    model: str
    resolution: str
    audio: str
    per_second: float | None
    per_job: float | None
    currency: str
    effective: date
    source: str
    per_compute_second: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What the price is for; a later entry with the same key overrides it."""
        return (self.provider, self.model, self.resolution, self.audio)

    def amount(self, seconds: int, compute_seconds: float = 0.0) -> float:
        """The price of a video of ``seconds`` that took ``compute_seconds`` to render."""
        total = (self.per_job or 0.0) + (self.per_second or 0.0) * seconds
        return round(total + (self.per_compute_second or 0.0) * compute_seconds, 6)

    def describe(self) -> str:
        """The price in words, with its date and source."""
        parts = [
            f"{value:g} {self.currency}{unit}"
            for value, unit in (
                (self.per_job, " per job"),
                (self.per_second, "/s"),
                (self.per_compute_second, "/s of compute"),
            )
            if value is not None
        ]
        rate = " + ".join(parts)
        what = f"{self.provider} {self.model} {self.resolution} audio={self.audio}"
        return f"{what} at {rate} (seen {self.effective.isoformat()}; {self.source})"


def provider_kind(provider: Provider) -> str:
    """The adapter kind prices are listed under: ``FalProvider`` is ``fal``."""
    name = type(provider).__name__.lower()
    return name.removesuffix("provider").removesuffix("videos")


class PriceTable:
    """Prices to estimate and account tasks' costs with. :meth:`shipped` is the library's."""

    def __init__(self, prices: Iterable[Price] = ()) -> None:
        merged: dict[tuple[str, str, str, str, date], Price] = {}
        for price in prices:
            merged[(*price.key, price.effective)] = price
        self._prices = tuple(merged.values())

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} prices)"

    @property
    def prices(self) -> tuple[Price, ...]:
        """Every entry, in the order given."""
        return self._prices

    @classmethod
    def shipped(cls) -> PriceTable:
        """The table that ships with the library (``sora_tasks/data/prices.csv``)."""
        text = resources.files("sora_tasks").joinpath("data/prices.csv").read_text("utf-8")
        return cls.from_csv(text, name="prices.csv")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceTable:
        """A table read from a CSV file with the shipped table's columns."""
        return cls.from_csv(Path(path).read_text("utf-8"), name=str(path))

    @classmethod
    def from_csv(cls, text: str, *, name: str = "prices") -> PriceTable:
        """A table from CSV text (lines starting with ``#`` are comments).

        The columns are those of the shipped table, in any order, and optionally
        ``per_compute_second``. Raises :class:`PriceTableError` naming the line of an entry
        without a price, with a negative one, or with a bad date.
        """
        rows = [
            (number, line)
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not rows:
            return cls()
        header = [column.strip() for column in next(csv.reader([rows[0][1]]))]
        if set(header) not in (set(_COLUMNS), {*_COLUMNS, _COMPUTE}) or len(header) != len(
            set(header)
        ):
            raise PriceTableError(
                f"{name} line {rows[0][0]}: the header must name {','.join(_COLUMNS)} "
                f"(and optionally {_COMPUTE})",
                field="prices",
            )
        prices = []
        for number, line in rows[1:]:
            [values] = list(csv.reader(io.StringIO(line)))
            prices.append(_price(header, values, f"{name} line {number}"))
        return cls(prices)

    def extended(self, other: PriceTable | Iterable[Price]) -> PriceTable:
        """This table with ``other``'s entries added, overriding those for the same thing on
        the same date."""
        added = other.prices if isinstance(other, PriceTable) else tuple(other)
        return PriceTable((*self._prices, *added))

    def price_for(
        self,
        providers: Sequence[str],
        model: str,
        resolution: str | None,
        audio: bool | None,
        *,
        seconds: int = 1,
        on: date | None = None,
    ) -> Price | None:
        """The price that applies to a video of ``seconds``, or ``None``. ``providers`` are
        names to look under, first preferred (a manager's name for the provider, then its
        adapter kind); the most specific entry wins, then the dearest. Of the dates of one
        entry, the latest on or before ``on`` holds (else the earliest known).
        """
        best: tuple[tuple[int, ...], float, Price] | None = None
        latest: dict[tuple[str, str, str, str], Price] = {}
        for price in self._prices:
            if not _fits(price, providers, model, resolution, audio):
                continue
            known = latest.get(price.key)
            if known is None or _newer(price, known, on):
                latest[price.key] = price
        for price in latest.values():
            rank = (
                len(providers) - providers.index(price.provider),
                price.model == model,
                price.resolution != _ANY,
                price.audio != _ANY,
                len(price.model),
            )
            cost = price.amount(seconds, seconds)
            if best is None or (rank, cost) > (best[0], best[1]):
                best = (rank, cost, price)
        return best[2] if best is not None else None

    def estimate(
        self, providers: Sequence[str], task: Task, *, expected_compute: float = 0.0
    ) -> TaskCost | None:
        """What ``task`` should cost, from the price that applies on its creation date
        (``expected_compute`` seconds of compute, for a price by compute time)."""
        price = self._for(providers, task)
        if price is None:
            return None
        compute = expected_compute if price.per_compute_second is not None else 0.0
        expected = f" and ~{compute:.0f} s of compute" if compute else ""
        return TaskCost(
            amount=price.amount(task.seconds, compute),
            currency=price.currency,
            estimated=True,
            source=f"estimate: {task.seconds} s{expected}, {price.describe()}",
        )

    def rendered(
        self, providers: Sequence[str], task: Task, *, compute_seconds: float | None = None
    ) -> TaskCost | None:
        """What ``task``, rendered in full, costs by the price that applies: by the compute
        time the provider reported (``compute_seconds``) where the price is by compute time.
        ``None`` when no price applies, or the price needs a usage the provider did not report.
        """
        price = self._for(providers, task)
        if price is None:
            return None
        if price.per_compute_second is None:
            compute, used = 0.0, ""
        elif compute_seconds is None:
            return None
        else:
            compute, used = compute_seconds, f" and {compute_seconds:g} s of compute reported"
        return TaskCost(
            amount=price.amount(task.seconds, compute),
            currency=price.currency,
            estimated=False,
            source=f"rendered: {task.seconds} s{used}, {price.describe()}",
        )

    def _for(self, providers: Sequence[str], task: Task) -> Price | None:
        return self.price_for(
            providers,
            task.model,
            task.resolution,
            task.audio,
            seconds=task.seconds,
            on=task.created_at.date(),
        )


def _newer(price: Price, known: Price, on: date | None) -> bool:
    """Whether ``price`` applies on ``on`` rather than ``known`` (the same entry, dated)."""
    if on is None:
        return price.effective > known.effective
    if (price.effective <= on) != (known.effective <= on):
        return price.effective <= on
    after = price.effective > on  # both after: the earliest is the best guess
    return price.effective < known.effective if after else price.effective > known.effective


def _fits(
    price: Price, providers: Sequence[str], model: str, resolution: str | None, audio: bool | None
) -> bool:
    if price.provider not in providers:
        return False
    if price.model != model and not fnmatch.fnmatchcase(model, price.model):
        return False
    # a value the request leaves open matches any entry: the dearest is chosen
    if resolution is not None and price.resolution not in (_ANY, resolution.lower()):
        return False
    wanted = None if audio is None else str(audio).lower()
    return wanted is None or price.audio in (_ANY, wanted)


def _price(header: list[str], values: list[str], where: str) -> Price:
    if len(values) != len(header):
        raise PriceTableError(
            f"{where}: {len(values)} values; an entry has {len(header)}", field="prices"
        )
    row = dict(zip(header, (value.strip() for value in values), strict=True))
    amounts = {column: _amount(row.get(column, ""), where) for column in _PRICES}
    if all(amount is None for amount in amounts.values()):
        raise PriceTableError(
            f"{where}: no price: give per_second, per_job or {_COMPUTE}", field="prices"
        )
    if row["audio"].lower() not in (_ANY, "true", "false"):
        raise PriceTableError(f"{where}: audio must be true, false or *", field="prices")
    for column in ("provider", "model", "resolution", "currency", "source"):
        if not row[column]:
            raise PriceTableError(f"{where}: {column} is missing", field="prices")
    try:
        effective = date.fromisoformat(row["effective"])
    except ValueError:
        raise PriceTableError(
            f"{where}: effective must be a date (YYYY-MM-DD), got {row['effective']!r}",
            field="prices",
        ) from None
    return Price(
        provider=row["provider"],
        model=row["model"],
        resolution=row["resolution"].lower(),
        audio=row["audio"].lower(),
        per_second=amounts["per_second"],
        per_job=amounts["per_job"],
        currency=row["currency"].upper(),
        effective=effective,
        source=row["source"],
        per_compute_second=amounts[_COMPUTE],
    )


def _amount(text: str, where: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise PriceTableError(f"{where}: {text!r} is not a price", field="prices") from None
    if not value >= 0 or value == float("inf"):
        raise PriceTableError(
            f"{where}: a price must be a finite number >= 0, got {text}", field="prices", limit=0
        )
    return value
