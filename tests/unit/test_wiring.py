"""Which reconcilers a process runs (``reconcilers.run``) and the election each set uses."""

from __future__ import annotations

import pytest

from reconcilers.wiring import PARTS, election_name, parts_of
from state.errors import BadRequest


def test_parts_and_their_election() -> None:
    assert parts_of("scheduler,gitsync,conductor,network") == PARTS
    assert election_name(PARTS) == "reconcilers"
    apart = parts_of(" conductor ")
    assert apart == ("conductor",) and election_name(apart) == "reconcilers-conductor"
    assert election_name(parts_of("gitsync,scheduler")) == "reconcilers-scheduler-gitsync"
    with pytest.raises(BadRequest, match="choose from scheduler, gitsync, conductor, network"):
        parts_of("scheduler,placement")
    with pytest.raises(BadRequest):
        parts_of("")
