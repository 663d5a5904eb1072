"""Hot swap: the server follows the registry's champion pointer.

Every ``poll_seconds`` the watcher reads ``Registry.champion()``. When it names another
version, that version is loaded beside the one serving (its file verified, its graph
traced) and then handed to the batcher in one reference assignment: requests keep being
answered by the old version until that moment and by the new one after it, so none
waits for a load and none fails because of one. A version that cannot be loaded is
logged as an error and shown in ``status()`` while the old one keeps serving; it is tried
again after ``retry_seconds``, or at once if the pointer moves on.

With a second batcher (``challenger``) the watcher also follows the roll-out plan
(``registry.rollout.active_plan``): while a shadow or canary stage is active against the
champion serving, the plan's challenger is loaded into that batcher the same way, and
:meth:`ChampionWatcher.plan` returns the plan once it is; the routes route by it. When the
challenger is promoted, the model already loaded is reused as the champion.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reviewops.registry.rollout import RolloutPlan, active_plan
from reviewops.registry.store import Registry, RegistryError
from reviewops.serving.batching import MicroBatcher
from reviewops.serving.served import ServedModel, load_served_model

log = logging.getLogger(__name__)

Loader = Callable[[str, str], ServedModel]


@dataclass(frozen=True)
class WatchStatus:
    champion: str | None  # as last read
    serving: str | None
    swaps: int
    last_error: str | None
    rollout_stage: str | None = None
    challenger: str | None = None
    challenger_error: str | None = None


class ChampionWatcher:
    def __init__(
        self,
        data_root: str,
        batcher: MicroBatcher,
        poll_seconds: float,
        loader: Loader = load_served_model,
        retry_seconds: float = 60.0,
        challenger: MicroBatcher | None = None,
    ) -> None:
        self.data_root = data_root
        self.batcher = batcher
        self.poll_seconds = poll_seconds
        self.loader = loader
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._champion: str | None = None
        self._failed: tuple[str, float] | None = None  # version, when to try it again
        self._last_error: str | None = None
        self._swaps = 0
        self.challenger = challenger
        self._plan: RolloutPlan | None = None
        self._challenger_failed: tuple[str, float] | None = None
        self._challenger_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="reviewops-serving-champion", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def status(self) -> WatchStatus:
        model = self.batcher.model
        plan = self.plan()
        return WatchStatus(
            self._champion,
            model.version if model else None,
            self._swaps,
            self._last_error,
            str(plan.stage) if plan else None,
            plan.challenger if plan else None,
            self._challenger_error,
        )

    def plan(self) -> RolloutPlan | None:
        """The roll-out to route by: active, against the champion serving, its challenger loaded."""
        plan = self._plan
        serving = self.batcher.model
        challenger = self.challenger.model if self.challenger else None
        if plan is None or serving is None or challenger is None:
            return None
        return plan if (serving.version, challenger.version) == (plan.champion, plan.challenger) else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception as exc:
                # A watcher thread that died would never swap again while the server looked
                # healthy: log it, show it in status(), and poll again.
                log.exception("champion watch failed")
                self._last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.poll_seconds)

    def check_once(self) -> bool:
        """Read the pointer and swap to the version it names when that differs from the
        one serving, then follow the roll-out plan; returns whether the champion swapped."""
        swapped = self._check_champion()
        if self.challenger is not None:
            self._check_plan()
        return swapped

    def _check_plan(self) -> None:
        assert self.challenger is not None
        try:
            plan = active_plan(self.data_root)
        except RegistryError as exc:
            self._plan, self._challenger_error = None, f"the roll-out plan cannot be read, champion only: {exc}"
            return
        self._plan = plan
        if plan is None:
            self._challenger_error = None
            return
        loaded = self.challenger.model
        if loaded is not None and loaded.version == plan.challenger:
            return
        failed = self._challenger_failed
        if failed and failed[0] == plan.challenger and time.monotonic() < failed[1]:
            return
        try:
            model = self.loader(self.data_root, plan.challenger)
        except Exception as exc:
            # The champion keeps answering everything; the plan waits for a loadable challenger.
            self._challenger_failed = (plan.challenger, time.monotonic() + self.retry_seconds)
            self._challenger_error = f"challenger {plan.challenger} cannot be served: {type(exc).__name__}: {exc}"
            log.error("%s", self._challenger_error)
            return
        self.challenger.swap(model)
        self._challenger_failed, self._challenger_error = None, None
        log.info("roll-out: %s loaded as the challenger (%s stage)", plan.challenger, plan.stage)

    def _check_champion(self) -> bool:
        try:
            champion = Registry(self.data_root).champion()
        except RegistryError as exc:
            return self._fail(f"the champion pointer cannot be read, still serving the loaded model: {exc}")
        self._champion = champion
        serving = self.batcher.model
        if champion is None:
            return self._fail(f"no champion under {Registry(self.data_root).root}: nothing to serve yet")
        if serving is not None and serving.version == champion:
            self._last_error = None
            return False
        if self._failed and self._failed[0] == champion and time.monotonic() < self._failed[1]:
            return False
        return self._load_and_swap(champion)

    def _load_and_swap(self, version: str) -> bool:
        started = time.monotonic()
        loaded = self.challenger.model if self.challenger else None
        try:
            # A promoted challenger is already loaded and traced: no second load.
            model = loaded if isinstance(loaded, ServedModel) and loaded.version == version else None
            model = model or self.loader(self.data_root, version)
        except Exception as exc:
            # Whatever stops a version loading (a file that is not the one registered, a
            # Vertex AI model, a damaged lineage store), the loaded model is still right to
            # serve: the error is logged and shown in status(), and retried later.
            self._failed = (version, time.monotonic() + self.retry_seconds)
            reason = str(exc) if isinstance(exc, RegistryError) else f"{type(exc).__name__}: {exc}"
            return self._fail(f"champion {version} cannot be served ({reason}); still serving the loaded model")
        previous = self.batcher.swap(model)
        self._swaps += 1
        self._failed = None
        self._last_error = None
        log.info(
            "serving model %s (was %s), loaded in %.1f s",
            version,
            previous.version if previous else "none",
            time.monotonic() - started,
        )
        return True

    def _fail(self, message: str) -> bool:
        if message != self._last_error:
            log.error("%s", message)
        self._last_error = message
        return False
