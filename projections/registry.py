"""The projections flp runs, by name."""

from __future__ import annotations

from projections.client_fleet import ClientFleet
from projections.contributions import ContributionLedger
from projections.job_board import JobBoard
from projections.job_detail import JobDetail
from projections.projection import Projection


def all_projections() -> list[Projection]:
    return [JobBoard(), JobDetail(), ClientFleet(), ContributionLedger()]


PROJECTION_NAMES = [p.name for p in all_projections()]
