"""Scenarios: the Contract's demo data, and loading JSON/TOML with clear errors."""

from __future__ import annotations

import json

import pytest

from camprotool.net.scenario import Scenario, demo_scenario, load_scenario


def test_demo_scenario_is_exactly_the_contracts() -> None:
    s = demo_scenario()
    accounts = {a.user: (a.password, a.cameras) for a in s.accounts}
    assert accounts == {
        "demo": ("demo", ("DEMO0001", "DEMO0002", "DEMO0003")),
        "bob": ("bob", ("DEMO0001",)),
        "alice": ("alice", ()),
    }
    ids = [c.id for c in s.cameras]
    assert ids == ["DEMO0001", "DEMO0002", "DEMO0003"] + [f"CAM{i:05d}" for i in range(1, 21)]
    assert {c.password for c in s.cameras} == {"1234"}
    assert s.max_accounts_per_camera == 2
    online = {c.id: c.online for c in s.cameras[:3]}
    assert online == {"DEMO0001": True, "DEMO0002": False, "DEMO0003": None}


def test_load_toml_and_json_agree(tmp_path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        'max_accounts_per_camera = 1\ncamera_password = "pw"\ncameras = ["C1"]\n'
        '[[accounts]]\nuser = "u"\npassword = "p"\ncameras = ["C1", "C2"]\n',
        encoding="utf-8")
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"max_accounts_per_camera": 1, "camera_password": "pw",
                              "cameras": ["C1"],
                              "accounts": [{"user": "u", "password": "p",
                                            "cameras": ["C1", "C2"]}]}))
    a, b = load_scenario(toml), load_scenario(js)
    assert a == b
    assert [c.id for c in a.cameras] == ["C1", "C2"]  # C2 created from the account's list
    assert {c.password for c in a.cameras} == {"pw"}
    assert load_scenario(a.to_dict()) == a


@pytest.mark.parametrize(("data", "message"), [
    ({"accounts": [{"user": "u"}]}, "accounts[0].password"),
    ({"cameras": [{"id": "A|B"}]}, "contains '|'"),
    ({"cameras": ["A", "A"]}, "listed twice"),
    ({"cameras": [{"id": "A", "online": "maybe"}]}, "true, false or null"),
    ({"colour": 1}, "unknown key 'colour'"),
    ({"max_accounts_per_camera": 1, "accounts": [
        {"user": "a", "password": "a", "cameras": ["X"]},
        {"user": "b", "password": "b", "cameras": ["X"]}]}, "more than its maximum"),
])
def test_bad_scenarios_name_the_problem(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace("[", r"\[")
                       .replace("]", r"\]")):
        Scenario.from_dict(data)


def test_bad_files(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("accounts = [", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.toml: not valid TOML"):
        load_scenario(bad)
    with pytest.raises(OSError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.json")
    other = tmp_path / "s.yaml"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match=r"expected a \.json or \.toml"):
        load_scenario(other)
