"""The severity table: the issue's aliases, case-insensitivity, overrides and unknown values."""

from __future__ import annotations

import pytest

from shared.alert import Severity
from shared.settings import SeveritySettings
from shared.severity import ORIGINAL_LABEL, SeverityTable, UnmappedSeverityError

REQUIRED = {
    Severity.critical: ["page", "p1", "crit", "fatal", "emergency"],
    Severity.error: ["high", "major", "p2", "err"],
    Severity.warning: ["medium", "warn", "minor", "p3"],
    Severity.info: ["low", "p4", "p5", "informational", "none"],
}


@pytest.mark.parametrize(
    ("alias", "canonical"), [(a, c) for c, aliases in REQUIRED.items() for a in aliases]
)
def test_default_aliases_case_insensitive(alias: str, canonical: Severity) -> None:
    table = SeverityTable()
    assert table.resolve(alias) is canonical
    assert table.resolve(alias.upper()) is canonical
    assert table.resolve(f"  {alias.title()} ") is canonical


def test_canonical_values_map_to_themselves() -> None:
    assert all(SeverityTable().resolve(s.value) is s for s in Severity)


def test_unknown_is_refused_or_mapped_to_the_configured_default() -> None:
    with pytest.raises(UnmappedSeverityError) as refused:
        SeverityTable().resolve("sev-unknown")
    assert refused.value.code == "severity_unmapped"
    assert SeverityTable(unmapped=Severity.warning).resolve("sev-unknown") is Severity.warning


def test_settings_extend_and_override_per_source_and_token() -> None:
    table = SeveritySettings(
        aliases={"Disaster": Severity.critical, "high": Severity.critical},
        by_source={"zabbix": {"average": Severity.warning}},
        by_token={"tok-1": {"high": Severity.warning}},
    ).table()
    assert table.resolve("disaster") is Severity.critical
    assert table.resolve("high") is Severity.critical  # settings win over the defaults
    assert table.resolve("average", source="zabbix") is Severity.warning
    with pytest.raises(UnmappedSeverityError):
        table.resolve("average", source="nagios")
    assert table.resolve("high", token_id="tok-1") is Severity.warning


def test_normalise_fields_keeps_the_original_value() -> None:
    fields = {"source": "prom", "summary": "x", "severity": "High", "labels": {"a": "b"}}
    SeverityTable().normalise_fields(fields)
    assert fields["severity"] == "error"
    assert fields["labels"] == {"a": "b", ORIGINAL_LABEL: "High"}
    canonical = {"severity": "info"}
    SeverityTable().normalise_fields(canonical)
    assert canonical == {"severity": "info"}  # nothing added when already canonical
