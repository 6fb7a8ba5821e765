"""Cleaning rules and import semantics, on the real Birmingham file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import SAMPLE_CSV

from parking_core.contracts import Reading
from parking_core.csv_import import (
    BIRMINGHAM,
    ColumnMapping,
    CsvFormatError,
    Rejection,
    import_csv,
    parse_local_time,
    read_readings,
)


@pytest.fixture(scope="module")
def parsed():
    return list(read_readings(SAMPLE_CSV, BIRMINGHAM, "Europe/London", "csv-import"))


def test_real_file_quirks(parsed):
    assert len(parsed) == 28_962
    rejected = [item for _, item in parsed if isinstance(item, Rejection)]
    # The 12 negative counts of NIA North, nothing else.
    assert len(rejected) == 12 and all("negative occupied" in r.reason for r in rejected)
    readings = [item for _, item in parsed if isinstance(item, Reading)]
    over = [r for r in readings if r.occupied > r.capacity]
    assert len(over) == 206  # kept: within the documented tolerance
    # The timestamp with a trailing TAB parses (BST in October: UTC+1).
    assert any(
        r.lot_id == "BHMBCCMKT01" and r.observed_at == datetime(2016, 10, 4, 12, 29, 45, tzinfo=UTC) for r in readings
    )


def test_import_counts_and_idempotency(sqlite_store):
    first = import_csv(sqlite_store, SAMPLE_CSV, progress=False)
    assert (first.rows, first.accepted, first.duplicates, len(first.rejected)) == (28_962, 28_744, 206, 12)
    assert len(first.new_lots) == 29
    second = import_csv(sqlite_store, SAMPLE_CSV, progress=False)
    assert (second.accepted, second.duplicates, len(second.rejected), second.new_lots) == (0, 28_950, 12, [])
    assert sqlite_store.count_readings() == 28_744
    lot = sqlite_store.get_lot("BHMBCCMKT01")
    assert (lot.capacity, lot.timezone, lot.grid_step_minutes) == (577, "Europe/London", 30)


def test_bad_rows_do_not_stop_the_import(sqlite_store, tmp_path):
    csv = tmp_path / "mixed.csv"
    csv.write_text(
        "park,when,cars,spaces\n"
        "P1,2020-03-01 08:00:00,10,100\n"
        "P1,not a time,10,100\n"
        "P1,2020-03-01 08:30:00,ten,100\n"
        "P1,2020-03-01 09:00:00,500,100\n"
        "P1,2020-03-29 01:30:00,5,100\n"  # DST gap in London
        "P1,2020-03-01 09:30:00,12,100\n"
        "P1,2020-03-01 08:00:00,11,100\n"  # same key, other value
    )
    mapping = ColumnMapping.parse("lot=park,time=when,occupied=cars,capacity=spaces")
    report = import_csv(sqlite_store, csv, mapping, "Europe/London", progress=False)
    assert report.accepted == 2
    reasons = {r.line: r.reason for r in report.rejected}
    assert set(reasons) == {3, 4, 5, 6, 8}
    assert "bad timestamp" in reasons[3] and "not a number" in reasons[4]
    assert "occupied" in reasons[5] and "daylight-saving gap" in reasons[6] and "conflict" in reasons[8]
    assert sqlite_store.latest_reading("P1").occupied == 12


def test_missing_column_is_a_clear_error(sqlite_store, tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("SystemCodeNumber,Capacity,LastUpdated\nA,10,2016-10-04 08:00:00\n")
    with pytest.raises(CsvFormatError, match="missing column.*Occupancy"):
        import_csv(sqlite_store, csv, progress=False)
    assert sqlite_store.count_readings() == 0


@pytest.mark.parametrize(("spec", "message"), [
    ("lot=a,time=b", "missing capacity"),
    ("lot=a,time=b,occupied=c,capacity=d,colour=e", "unknown name 'colour'"),
    ("lot", "expected name=COLUMN"),
    ("lot=a,time=b,capacity=d", "missing occupied or free"),
    ("lot=a,time=b,occupied=c,free=f,capacity=d", "exactly one of occupied=COLUMN and free=COLUMN"),
    ("lot=,time=b,occupied=c,capacity=d", "lot names no column"),
])
def test_bad_column_mapping(spec, message):
    with pytest.raises(CsvFormatError, match=message):
        ColumnMapping.parse(spec)


def test_another_citys_export_semicolons_free_spaces_and_epoch_times(sqlite_store, tmp_path):
    """What open-data portals publish: ';' as the delimiter (with a BOM), free spaces instead of
    cars, Unix times in seconds or milliseconds; rows that break a rule are rejected as ever."""
    csv = tmp_path / "city.csv"
    csv.write_text(
        "\ufeffgarage;ts;free spaces (now, total);total\n"
        "G1;1672650000;40;100\n"  # 2023-01-02 09:00:00 UTC
        "G1;1672651800000;35;100\n"  # milliseconds: 09:30 UTC
        "G1;2023-01-02T11:00:00+01:00;-3;100\n"  # 3 over capacity: within the counters' tolerance
        "G1;2023-01-02 12:00:00;130;100\n"  # more free than spaces: a counter fault
        "G1;2023-01-02 12:30:00;x;100\n"
        "G1;2023010213;50;100\n",  # a compact date-hour is not a Unix time
        encoding="utf-8",
    )
    mapping = ColumnMapping.parse("lot=garage,time=ts,free=free spaces (now, total),capacity=total")
    report = import_csv(sqlite_store, csv, mapping, "Europe/Berlin", progress=False)
    assert (report.rows, report.accepted) == (6, 3)
    reasons = {r.line: r.reason for r in report.rejected}
    assert "negative occupied: -30 (130 free of 100" in reasons[5] and "free 'x' is not a number" in reasons[6]
    assert "bad timestamp: '2023010213'" in reasons[7]
    stored = sqlite_store.query_readings("G1", datetime(2023, 1, 2, tzinfo=UTC), datetime(2023, 1, 3, tzinfo=UTC))
    assert [(r.observed_at, r.occupied) for r in stored] == [
        (datetime(2023, 1, 2, 9, 0, tzinfo=UTC), 60), (datetime(2023, 1, 2, 9, 30, tzinfo=UTC), 65),
        (datetime(2023, 1, 2, 10, 0, tzinfo=UTC), 103)]
    with pytest.raises(CsvFormatError, match="missing column.*free spaces"):
        import_csv(sqlite_store, csv, ColumnMapping.parse("lot=garage,time=ts,free=free spaces,capacity=total"),
                   "UTC", progress=False)
    # Commas are the delimiter even when a quoted column name holds semicolons; tabs work too.
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('lot,"when;local;utc;iso",cars,spaces\nQ1,2023-01-02 08:00:00,7,50\n')
    tabs = tmp_path / "tabs.tsv"
    tabs.write_text("lot\twhen;local;utc;iso\tcars\tspaces\nT1\t2023-01-02 08:00:00\t8\t50\n")
    for path, lot in ((quoted, "Q1"), (tabs, "T1")):
        report = import_csv(sqlite_store, path, ColumnMapping.parse("lot=lot,time=when;local;utc;iso,occupied=cars,"
                                                                    "capacity=spaces"), "UTC", progress=False)
        assert report.accepted == 1 and sqlite_store.latest_reading(lot).occupied in (7, 8)


def test_ambiguous_autumn_hour_takes_first_occurrence():
    from zoneinfo import ZoneInfo

    t = parse_local_time("2016-10-30 01:30:00", ZoneInfo("Europe/London"))
    assert t.astimezone(UTC) == datetime(2016, 10, 30, 0, 30, tzinfo=UTC)
