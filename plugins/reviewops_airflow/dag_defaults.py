"""What the reviewops DAGs must agree on: the start date and the task defaults.

Each DAG still states its own schedule, ``catchup``, tags and retry count; only what
must not drift between them lives here. Every DAG renders its templates as native
objects (``render_template_as_native_obj=True``; the integrity test holds them to it),
so a templated argument arrives as the type its Param declares: a number, a boolean, a
dict, a list, or None where a template renders nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# A Monday at or before the first week of the review history (the shipped reviews start
# in March 2008): a backfill can reach any week of it. Moving it later hides weeks.
START_DATE = datetime(2008, 1, 7, tzinfo=UTC)

OWNER = "reviewops"


def task_defaults(*, retries: int, retry_delay: timedelta = timedelta(minutes=1)) -> dict[str, Any]:
    """A DAG's ``default_args``: the owner, and the retry policy the DAG chooses on purpose."""
    return {"owner": OWNER, "retries": retries, "retry_delay": retry_delay}
