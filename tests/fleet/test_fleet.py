"""The fleet generator: dumpcap-style ring buffers of a deployment, reproducible."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import camprotool as cpt
from camprotool.capture.readers import open_capture
from camprotool.dataset.sets import group_sets, set_key
from camprotool.fleet import FleetSpec, generate_fleet
from camprotool.fleet.ring import ring_name
from camprotool.net.handlers import REASONS

SPEC = FleetSpec(sensors=2, days=1, clients=30, visits_per_day=3, ring_seconds=6 * 3600,
                 seed=7)


def digest(paths: list[Path]) -> list[tuple[str, str]]:
    return [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    return generate_fleet(tmp_path_factory.mktemp("fleet"), SPEC)


def test_same_seed_same_files(fleet, tmp_path: Path) -> None:
    again = generate_fleet(tmp_path / "again", SPEC)
    assert digest(again.paths) == digest(fleet.paths)
    other = generate_fleet(tmp_path / "other", FleetSpec(**{**_fields(SPEC), "seed": 8}))
    assert digest(other.paths) != digest(fleet.paths)


def _fields(spec: FleetSpec) -> dict:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def test_one_ring_buffer_per_sensor_in_time_order(fleet) -> None:
    assert sorted(fleet.files) == ["sensor-a", "sensor-b"]
    sets = group_sets(fleet.folder)
    assert [(s.name, len(s.paths)) for s in sets] == [(k, len(v)) for k, v in
                                                      sorted(fleet.files.items())]
    for paths in fleet.files.values():
        last = 0
        for path in paths:
            with open_capture(path) as cap:
                stamps = [packet.ts_ns for packet in cap]
            assert stamps == sorted(stamps) and stamps[0] >= last
            assert stamps[-1] - stamps[0] < SPEC.ring_seconds * 1e9  # -b duration
            last = stamps[-1]
    assert fleet.messages > 4000 and fleet.packets > fleet.messages
    # every message counted was captured (none scripted after the sensors stopped)
    assert fleet.messages == sum(len(cpt.read_capture([str(p) for p in paths]).messages)
                                 for paths in fleet.files.values())


def test_a_sets_connections_cross_its_files_and_answers_come_from_the_store(fleet) -> None:
    paths = fleet.files["sensor-b"]
    whole = cpt.read_capture([str(p) for p in paths])
    assert "mid_stream" not in set(whole.problems["kind"].astype(str))
    assert (whole.sessions["outcome"] == "before_capture").sum() == 0
    # read alone, a later file starts inside connections an earlier one opened
    assert any("mid_stream" in set(cpt.read_capture(p).problems["kind"].astype(str))
               for p in paths[1:])
    reasons = set(whole.sync["reason"].dropna())
    assert REASONS["full"] in reasons and REASONS["mismatch"] in reasons
    assert set(whole.sync["kind"].astype(str)) == {"upload", "download"}
    assert len(whole.alarms) and whole.status["changed"].any()
    assert set(whole.transfers["status"].astype(str)) >= {"complete", "failed"}
    # the two-accounts limit: no camera is bound (uploaded successfully) to a third account
    ok = whole.sync[(whole.sync["kind"] == "upload") & (whole.sync["outcome"] == "ok")]
    users = whole.sessions.set_index("session")["user"]
    bound = ok.assign(user=ok["session"].map(users)).groupby("camera_id")["user"].nunique()
    assert bound.max() <= 2


@given(prefix=st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True),
       number=st.integers(1, 10**6), seconds=st.integers(0, 4_000_000_000))
def test_ring_names_group_back_to_their_prefix(prefix: str, number: int, seconds: int) -> None:
    assert set_key(f"/d/{ring_name(prefix, number, seconds * 10**9)}") == (prefix, number)


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="sensors"):
        FleetSpec(sensors=0)
    with pytest.raises(ValueError, match="fewer than one per sensor"):
        FleetSpec(sensors=4, clients=3)
    with pytest.raises(ValueError, match="ring_seconds, ring_bytes"):
        FleetSpec(ring_seconds=None)
