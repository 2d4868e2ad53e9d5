"""Every fuzz target, briefly, in the test suite (``make fuzz`` runs them for a budget).

A few dozen examples each, derandomized so a run is repeatable: the point here is
that the targets and their properties keep working; finding new failures is the
job of ``make fuzz`` (docs/fuzzing.md). The emulator target is also the issue's
"every request is answered" property test: generated hostile requests on main and
data connections each get an answer of the right kind, or a close, never silence.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fuzz_targets import TARGETS, Target
from hypothesis import HealthCheck, given, settings

EXAMPLES = {"capture_files": 40, "decoders": 60, "reassembler": 80, "emulator": 40}


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    t = TARGETS[request.param]
    with t.context():
        yield t


@pytest.mark.timeout(300)
def test_target_holds(target: Target) -> None:
    @settings(max_examples=EXAMPLES[target.name], derandomize=True, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def prop(example: object) -> None:
        target.check(example)

    prop()
