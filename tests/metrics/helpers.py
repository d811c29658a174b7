"""Reading the exposition: scraping over HTTP and indexing samples by name and labels."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


async def scrape(port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200, await response.text()
        return await response.text()


def samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**values: str) -> Labels:
    return frozenset(values.items())


def of_migration(found: Samples, migration: str, *, names: tuple[str, ...] = ()) -> Samples:
    """The samples labelled ``migration=...`` (only the ``names`` given, when given)."""
    return {
        (name, lbls): value
        for (name, lbls), value in found.items()
        if ("migration", migration) in lbls and (not names or name in names)
    }


def without_buckets(found: Mapping[tuple[str, Labels], float]) -> Samples:
    return {k: v for k, v in found.items() if not k[0].endswith("_bucket")}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run scripts/install-promtool.sh"
    return path


def check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
