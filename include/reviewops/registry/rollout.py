"""The roll-out plan: how a challenger takes over from the champion, one stage at a time.

``models/rollout.json`` sits next to the champion pointer and, like it, is replaced in one
atomic write under the registry lock. It names the champion and the challenger, the stage
and the canary's share of traffic:

- ``shadow``: the challenger scores a copy of every request; the champion answers;
- ``canary``: the challenger answers ``canary_share`` of the requests, chosen by a hash of
  the request key (the same key always lands on the same side), the champion the rest;
- ``full``: the challenger has been promoted; it is the champion and answers everything;
- ``rolled_back``: the roll-out was stopped; the champion answers everything.

Every stage change is appended to the promotion history (``Registry.append_change``), and
the step to ``full`` is a promotion (``Registry.promote``), so ``reviewops models history``
shows a roll-out beside the promotions and rollbacks. A plan is only acted on while its
champion is still the registry's champion: a promotion by other means ends it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from reviewops.contracts import ModelKind
from reviewops.registry.store import Registry, RegistryError, _now, check_version
from reviewops.storage.io import read_json, write_json
from reviewops.storage.paths import StoragePath

ROLLOUT_FILE = "rollout.json"
DEFAULT_CANARY_SHARE = 0.1


class Stage(StrEnum):
    SHADOW = "shadow"
    CANARY = "canary"
    FULL = "full"
    ROLLED_BACK = "rolled_back"


ACTIVE = frozenset({Stage.SHADOW, Stage.CANARY})
NEXT_STAGE = {Stage.SHADOW: Stage.CANARY, Stage.CANARY: Stage.FULL}


class RolloutError(RegistryError):
    """A roll-out that cannot start or move; the message says what to do."""


@dataclass(frozen=True)
class RolloutPlan:
    champion: str
    challenger: str
    stage: Stage
    canary_share: float
    started_at: str  # the roll-out's start: its id with the challenger
    stage_since: str  # when the current stage began: live metrics are read from then on
    reason: str
    actor: str

    def __post_init__(self) -> None:
        check_version(self.champion)
        check_version(self.challenger)
        Stage(self.stage)
        if not 0.0 < self.canary_share <= 0.5:
            raise RolloutError(
                f"canary_share {self.canary_share!r} must be above 0 and at most 0.5: a canary answers a "
                "minority of traffic (the full stage answers all of it)"
            )

    @property
    def active(self) -> bool:
        return self.stage in ACTIVE

    @property
    def rollout_id(self) -> str:
        return f"{self.challenger}-{self.started_at.replace(':', '').replace('+0000', 'Z')}"

    def answers_with_challenger(self, request_key: str) -> bool:
        """Whether the challenger answers a request with this key: in the canary stage, for
        the keys whose hash falls in the first ``canary_share`` of the range (sticky: a
        key always gets the same side while the share stays)."""
        if self.stage != Stage.CANARY:
            return False
        return key_fraction(request_key) < self.canary_share

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stage": str(self.stage)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutPlan:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**{**known, "stage": Stage(known.get("stage", "")), "canary_share": float(known["canary_share"])})


def key_fraction(request_key: str) -> float:
    """A request key's place in [0, 1): the first 8 bytes of its sha256 (the same on every
    replica and after a restart, unlike ``hash()``)."""
    digest = hashlib.sha256(request_key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def plan_path(data_root: str) -> StoragePath:
    return Registry(data_root).root / ROLLOUT_FILE


def read_plan(data_root: str) -> RolloutPlan | None:
    """The roll-out plan, None when none was ever made; a :class:`RolloutError` naming
    the file when it cannot be read."""
    path = plan_path(data_root)
    if not path.exists():
        return None
    try:
        return RolloutPlan.from_dict(read_json(path))
    except (ValueError, TypeError, KeyError) as exc:
        raise RolloutError(
            f"the roll-out plan {path} is damaged ({exc}): delete it to stop the roll-out (the champion "
            "answers everything), or start the roll-out again"
        ) from None


def active_plan(data_root: str) -> RolloutPlan | None:
    """The plan the server routes by: an active one whose champion is still champion."""
    plan = read_plan(data_root)
    if plan is None or not plan.active:
        return None
    return plan if Registry(data_root).champion() == plan.champion else None


def _write(registry: Registry, plan: RolloutPlan, reason: str) -> RolloutPlan:
    """Write the plan and its history line; call it holding the registry lock."""
    registry.append_change(
        f"rollout-{plan.stage}",
        registry.require_champion(),
        f"{plan.stage} {plan.challenger} (champion {plan.champion}): {reason}",
        plan.actor,
        challenger=plan.challenger,
        stage=str(plan.stage),
        rollout=plan.rollout_id,
    )
    write_json(plan.to_dict(), registry.root / ROLLOUT_FILE)
    return plan


def start_rollout(
    data_root: str, challenger: str, reason: str, actor: str, canary_share: float = DEFAULT_CANARY_SHARE
) -> RolloutPlan:
    """Put ``challenger`` in shadow beside the champion (the active plan as it is when it is
    already this challenger's). Refused while another roll-out is active, for the champion
    itself, and for a version the server cannot load (not Keras)."""
    registry = Registry(data_root)
    if registry.kind(challenger) != ModelKind.KERAS:
        raise RolloutError(f"{challenger} is a {registry.kind(challenger)} model: only Keras versions are served")
    with registry.locked():
        champion = registry.require_champion()
        if challenger == champion:
            raise RolloutError(f"{challenger} is already the champion: there is nothing to roll out")
        current = read_plan(data_root)
        if current is not None and current.active and current.champion == champion:
            if current.challenger == challenger:  # a retry, or the same trigger twice: no second start
                return current
            raise RolloutError(
                f"a roll-out of {current.challenger} is in its {current.stage} stage: let it finish or roll it back "
                "first (the reviews_rollout DAG, or reviewops.registry.rollout.roll_back)"
            )
        now = _now()
        plan = RolloutPlan(champion, challenger, Stage.SHADOW, canary_share, now, now, reason, actor)
        return _write(registry, plan, reason)


def advance_stage(data_root: str, reason: str, actor: str) -> RolloutPlan:
    """Move the active roll-out one stage on: shadow to canary, canary to full (the
    challenger promoted, only if the champion is still the plan's)."""
    registry = Registry(data_root)
    plan = _require_active(data_root)
    target = NEXT_STAGE[plan.stage]
    if target == Stage.FULL and not registry.promote(
        plan.challenger, f"rollout: {reason}", actor, expected=plan.champion
    ):
        raise RolloutError(
            f"{plan.challenger} was not promoted: the champion is no longer {plan.champion}. Start a new roll-out "
            "against the new champion"
        )
    with registry.locked():
        return _write(registry, replace(plan, stage=target, stage_since=_now(), actor=actor), reason)


def roll_back(data_root: str, reason: str, actor: str) -> RolloutPlan:
    """Stop the active roll-out: the champion answers everything again. (After ``full``,
    ``reviewops models rollback`` makes the former champion champion again.)"""
    registry = Registry(data_root)
    with registry.locked():
        plan = _require_active(data_root)
        return _write(registry, replace(plan, stage=Stage.ROLLED_BACK, stage_since=_now(), actor=actor), reason)


def _require_active(data_root: str) -> RolloutPlan:
    plan = read_plan(data_root)
    if plan is None or not plan.active:
        state = "no roll-out was ever started" if plan is None else f"the last one is {plan.stage}"
        raise RolloutError(f"no active roll-out ({state}): start one with a challenger first")
    champion = Registry(data_root).champion()
    if champion != plan.champion:
        raise RolloutError(
            f"the roll-out of {plan.challenger} was planned against champion {plan.champion}, but the champion is "
            f"{champion} now: start a new roll-out"
        )
    return plan
