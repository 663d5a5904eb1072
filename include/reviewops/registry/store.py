"""The model registry: immutable version folders and one champion pointer.

``models/<version>/`` holds the saved model and its metadata; once published it never
changes. ``models/champion.json`` names the version that scores new weeks; it is only
ever replaced in one atomic step, so readers see the old champion or the new one.

Champion changes are serialised: locally with ``flock`` on ``models/.registry.lock``; on
an object store, which has no locks, with a lock object created only if absent (GCS's
``ifGenerationMatch=0`` precondition). A change that cannot take the lock within
``LOCK_WAIT_SECONDS`` fails, naming the lock, rather than racing.

A version id is ``m-`` and lowercase letters, digits and single hyphens
(:data:`VERSION_PATTERN`); :meth:`Registry.path` refuses anything else, so no version a
run or a command names can reach outside ``models/``. Registration records the sha256 of
every file of a version in its metadata, and :meth:`Registry.verified_file` checks a
model file against it before the file is used.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reviewops.contracts import (
    METADATA_FILE,
    MODEL_CARD_FILE,
    MODEL_FILE,
    MODEL_VERSION_MAX_LENGTH,
    MODEL_VERSION_PATTERN,
    TRAINING_FILE,
    VERTEX_MODEL_FILE,
    ArtifactKind,
    EvaluationReport,
    GateRecord,
    ModelKind,
    ModelMetadata,
)
from reviewops.lineage.record import Artifact, StepResult, code_version
from reviewops.storage.io import (
    create_exclusive,
    fetch,
    read_json,
    remove,
    sha256_file,
    size_of,
    write_json,
    write_text,
)
from reviewops.storage.paths import Layout, StoragePath, is_remote, to_uri
from reviewops.storage.publish import files_in, is_published, publish_dir, staging_dir

log = logging.getLogger(__name__)

CHAMPION_FILE = "champion.json"
HISTORY_FILE = "promotions.jsonl"
LOCK_FILE = ".registry.lock"
ANY = object()
# A Vertex AI tuned model has no weights here: its folder holds VERTEX_MODEL_FILE instead
# (resource names, base model, prompt, data, tuning job config).
MODEL_FILES = {ModelKind.KERAS: MODEL_FILE, ModelKind.VERTEX: VERTEX_MODEL_FILE}
LOCK_WAIT_SECONDS = 30.0
VERSION_PATTERN = re.compile(MODEL_VERSION_PATTERN)


def kind_of(meta: Mapping[str, Any]) -> ModelKind:
    """What a version's metadata says it holds (a version registered before kinds existed
    is Keras)."""
    return ModelKind(meta.get("kind", ModelKind.KERAS))


class RegistryError(RuntimeError):
    """A model version or champion that is not there; the message says what to run."""


class ModelFileError(RegistryError):
    """A model file that is not what was registered, or that cannot be loaded."""


class ChampionPointerError(RegistryError):
    """``champion.json`` cannot be read; ``reviewops models promote`` replaces it."""


def check_version(version: str) -> str:
    """``version`` when it is a registry id; a :class:`RegistryError` otherwise."""
    if not (
        isinstance(version, str) and len(version) <= MODEL_VERSION_MAX_LENGTH and VERSION_PATTERN.fullmatch(version)
    ):
        raise RegistryError(
            f"{str(version)[:80]!r} is not a model version id: use m- and lowercase letters, digits and "
            "hyphens, as 'reviewops models' lists them (e.g. m-0123456789ab)"
        )
    return version


def model_version_id(dataset_version: str, params: dict[str, Any], code: str) -> str:
    """Same dataset, parameters and code give the same version."""
    spec = json.dumps({"dataset": dataset_version, "params": params, "code": code}, sort_keys=True)
    return f"m-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Registry:
    data_root: str

    @property
    def root(self) -> StoragePath:
        return Layout(self.data_root).models()

    def staging(self) -> StoragePath:
        return self.root / ".staging"

    def candidates(self) -> StoragePath:
        """Where training writes candidates; they stay there for audit after registration."""
        return self.root / "candidates"

    def path(self, version: str) -> StoragePath:
        """The folder of a version; the one place a version id becomes a path."""
        return self.root / check_version(version)

    def versions(self) -> list[dict[str, Any]]:
        """Metadata of every registered (published) version, oldest first."""
        found = []
        for meta in self.root.glob(f"m-*/{METADATA_FILE}"):
            if is_published(meta.parent):
                found.append(read_json(meta))
        return sorted(found, key=lambda m: (m["registered_at"], m["version"]))

    def metadata(self, version: str) -> ModelMetadata:
        meta = self.path(version) / METADATA_FILE
        if not (is_published(meta.parent) and meta.exists()):
            known = ", ".join(m["version"] for m in self.versions()) or "none"
            raise RegistryError(f"model version {version} is not registered (registered: {known})")
        data: ModelMetadata = read_json(meta)
        return data

    def champion(self) -> str | None:
        """The champion's version, None when there is none yet; a
        :class:`ChampionPointerError` saying how to repair a damaged pointer."""
        pointer = self.root / CHAMPION_FILE
        try:
            text = pointer.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return check_version(json.loads(text)["version"])
        except (ValueError, TypeError, KeyError, RegistryError) as exc:
            reason = f"not valid JSON: {exc}" if isinstance(exc, ValueError) else "it names no valid version"
            raise ChampionPointerError(
                f"the champion pointer {to_uri(pointer)} is damaged ({reason}): name the champion again with "
                "'reviewops models promote VERSION --reason ...' ('reviewops models history' shows the last one)"
            ) from None

    def kind(self, version: str) -> ModelKind:
        """What a registered version holds (a version registered before kinds existed is Keras)."""
        return kind_of(self.metadata(version))

    def require_champion(self) -> str:
        version = self.champion()
        if version is None:
            raise RegistryError(
                f"no champion model under {self.root}: run the reviews_training DAG first "
                '(make demo does), or pin a version with conf {"model_version": "m-..."}'
            )
        return version

    def resolve(self, version: str | None) -> str:
        """The version to score with: the pinned one or the champion. A pinned version
        must be blessed: passed the gate, or been champion (a manual promotion counts)."""
        if not version:
            return self.require_champion()
        meta = self.metadata(version)
        if not self.is_blessed(version):
            gate = meta.get("gate", {})
            why = "; ".join(gate.get("reasons", [])) or "no gate decision recorded"
            raise RegistryError(
                f"model {version} was not promoted ({why}): it cannot score a week. "
                f"Promote it by hand with 'reviewops models promote {version} --reason ...' if you mean it"
            )
        return version

    def keras_model(self, version: str) -> StoragePath:
        """The saved Keras model of a version, checked against the sha256 recorded when it
        was registered (:meth:`verified_file`); a clear error for a version of another
        kind (a Vertex AI tuned model has no weights here: it scores on Vertex AI)."""
        meta = self.metadata(version)
        kind = kind_of(meta)
        if kind != ModelKind.KERAS:
            tuned = (meta.get("vertex") or {}).get("tuned_model_name", "?")
            raise RegistryError(
                f"model {version} is a {kind} model (Vertex AI tuned model {tuned}), not a Keras model: "
                "score it with scoring_backend=vertex, or pin a Keras version with model_version"
            )
        return self.verified_file(version, MODEL_FILE)

    def verified_file(self, version: str, name: str) -> StoragePath:
        """A file of a version, after checking it still has the sha256 recorded at
        registration: in its metadata, or, for a version registered before metadata held
        hashes, in the lineage record of the task that registered it. A
        :class:`ModelFileError` saying what to do otherwise; nothing unverified is used."""
        meta = self.metadata(version)
        path = self.path(version) / name
        recorded = (meta.get("sha256") or {}).get(name) or self._registered_sha256(path)
        if recorded is None:
            raise ModelFileError(
                f"model {version} was registered before the registry recorded file hashes, and no lineage "
                f"record names {to_uri(path)}: it cannot be verified, so it is not used. Retrain it "
                "(reviews_training) and promote the new version, or promote another version"
            )
        if not path.exists():
            raise ModelFileError(f"model file {to_uri(path)} of {version} is missing: {_RESTORE}")
        found = sha256_file(path)
        if found != recorded:
            raise ModelFileError(
                f"model file {to_uri(path)} of {version} is not the file registered (sha256 {found[:12]}, "
                f"registered {recorded[:12]}): it is not used. {_RESTORE}"
            )
        return path

    def _registered_sha256(self, path: StoragePath) -> str | None:
        """The sha256 the oldest lineage record that wrote ``path`` recorded (the
        registration: a version folder never changes after it)."""
        from reviewops.lineage.store import LineageStore

        uri = to_uri(path)
        for record in LineageStore(self.data_root).records():  # oldest first
            for artifact in record.outputs:
                if artifact.uri == uri:
                    return artifact.sha256
        return None

    def keras_reference(self) -> str | None:
        """The Keras version whose training reference and vocabulary monitoring compares
        a week with when the week was scored by a model that has none (Gemini on Vertex
        AI): the champion when it is a Keras model, else the newest Keras version."""
        champion = self.champion()
        if champion is not None and self.kind(champion) == ModelKind.KERAS:
            return champion
        keras = [str(m["version"]) for m in self.versions() if kind_of(m) == ModelKind.KERAS]
        return keras[-1] if keras else None

    def is_blessed(self, version: str) -> bool:
        meta = self.metadata(version)
        if meta.get("gate", {}).get("promote"):
            return True
        return any(entry["version"] == version for entry in self.history())

    def register(self, candidate: StoragePath, metadata: ModelMetadata) -> tuple[StoragePath, bool]:
        """Publish a copy of a candidate folder as a version; returns (folder, newly_published).

        Versions are immutable: when the version already exists the copy is dropped and
        the registered one is kept.
        """
        staging = staging_dir(self.staging(), check_version(metadata["version"]))
        hashes = {}
        for item in files_in(candidate):
            hashes[item.name] = sha256_file(fetch(item, staging / item.name))
        write_json({**metadata, "sha256": hashes}, staging / METADATA_FILE)
        target = self.path(metadata["version"])
        published = publish_dir(staging, target)
        if not published:
            log.info("model %s is already registered: kept the registered copy", metadata["version"])
        return target, published

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise champion changes between processes (and, on an object store, machines)."""
        if is_remote(self.root):
            with self._lock_object():
                yield
            return
        assert isinstance(self.root, Path)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _lock_object(self) -> Iterator[None]:
        lock = self.root / LOCK_FILE
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "at": _now()}
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not create_exclusive(lock, json.dumps(holder).encode()):
            if time.monotonic() > deadline:
                try:
                    held = lock.read_text(encoding="utf-8")
                except FileNotFoundError:
                    held = "(released just now)"
                raise RegistryError(
                    f"the registry lock {to_uri(lock)} is held ({held}) for more than {LOCK_WAIT_SECONDS:.0f} s: "
                    "another promotion is running, or one died holding it. If none is running, delete the "
                    "lock object and run again"
                )
            time.sleep(0.2)
        try:
            yield
        finally:
            remove(lock)

    def promote(self, version: str, reason: str, actor: str, expected: str | object | None = ANY) -> bool:
        """Point the champion at ``version`` in one atomic step and append the change to
        the promotion history. With ``expected``, only when the champion is still that
        version (None: still none), so two training runs can never both promote.

        Without ``expected`` (a promotion by hand) a damaged champion pointer is replaced:
        this is how it is repaired; the history then names the last champion it recorded
        as the previous one."""
        self.metadata(version)
        with self._locked():
            damaged = False
            try:
                current = self.champion()
            except ChampionPointerError as exc:
                if expected is not ANY:
                    raise
                log.warning("%s: replacing it with %s", exc, version)
                current, damaged = self._last_recorded_champion(), True
            if expected is not ANY and current != expected:
                log.warning("champion is %s, not %s as evaluated: %s not promoted", current, expected, version)
                return False
            if current == version and not damaged:
                return False
            self._set_champion(version, reason, actor, "promote", current)
        return True

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock champion changes take, for a change kept beside the pointer (a
        roll-out plan) that must not interleave with one. Not re-entrant: do not promote
        while holding it."""
        with self._locked():
            yield

    def append_change(self, action: str, version: str, reason: str, actor: str, **details: Any) -> dict[str, Any]:
        """Append a change that moves no champion (a roll-out stage) to the history; call it
        holding :meth:`locked`. ``version`` is the champion at the time, so the history's
        readers (``is_blessed``, ``rollback``, a pointer's repair) read the entry right."""
        entry = {"at": _now(), "action": action, "version": version, "previous": version, "reason": reason}
        entry = {**entry, "actor": actor, **details}
        self._append_history(json.dumps(entry, sort_keys=True) + "\n")
        return entry

    def _last_recorded_champion(self) -> str | None:
        history = self.history()
        return str(history[-1]["version"]) if history else None

    def rollback(self, reason: str, actor: str) -> str:
        """Make the champion the version the current one replaced when it was promoted
        (so repeated rollbacks walk back through the promotions)."""
        with self._locked():
            current = self.champion()
            promotions = [e for e in self.history() if e["version"] == current and e["action"] == "promote"]
            before: str | None = promotions[-1]["previous"] if promotions else None
            if current is None or before is None:
                raise RegistryError("nothing to roll back to: the champion has no predecessor in the history")
            self._set_champion(before, reason, actor, "rollback", current)
        return before

    def _set_champion(self, version: str, reason: str, actor: str, action: str, previous: str | None) -> None:
        entry = {
            "at": _now(),
            "action": action,
            "version": version,
            "previous": previous,
            "reason": reason,
            "actor": actor,
        }
        # History first: a crash in between leaves an entry for a change that did not
        # happen (visible, harmless), never a champion the history cannot explain.
        self._append_history(json.dumps(entry, sort_keys=True) + "\n")
        write_json(
            {"version": version, "promoted_at": entry["at"], "reason": reason, "actor": actor},
            self.root / CHAMPION_FILE,
        )
        log.info("champion %s -> %s (%s by %s: %s)", previous, version, action, actor, reason)

    def _append_history(self, line: str) -> None:
        """Append under the lock: in place locally, a whole new object on an object store
        (which cannot append)."""
        path = self.root / HISTORY_FILE
        if isinstance(path, Path):
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            return
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        write_text(before + line, path)

    def history(self) -> list[dict[str, Any]]:
        """Every promotion and rollback, oldest first (append-only)."""
        path = self.root / HISTORY_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


_RESTORE = (
    "Restore the version's folder from a backup, or promote or pin another version "
    "('reviewops models' lists them; 'reviewops models promote VERSION --reason ...')"
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RegisterParams:
    data_root: str
    actor: str = "reviewops"


def register_model(
    params: RegisterParams,
    candidate: StoragePath,
    evaluation: EvaluationReport,
    decision: GateRecord,
    training: dict[str, Any],
    manifest: dict[str, Any],
) -> StepResult:
    """Publish an evaluated candidate as an immutable registry version, with its model
    card, and make it champion when the gate said so and the champion is still the one
    it was compared with."""
    from reviewops.registry.model_card import render_model_card

    registry = Registry(params.data_root)
    version = evaluation["model_version"]
    try:
        kind = ModelKind(training.get("kind", ModelKind.KERAS))
    except ValueError:
        raise RegistryError(
            f"candidate of unknown kind {training.get('kind')!r}: known kinds are {', '.join(MODEL_FILES)}"
        ) from None
    metadata: ModelMetadata = {
        "version": version,
        "kind": kind,
        "dataset_version": manifest["version"],
        "params": training["params"],
        "warm_start_from": training.get("warm_start_from"),
        "code_version": training.get("code_version") or code_version(),
        "registered_at": _now(),
        "train_seconds": training["train_seconds"],
        "size_bytes": sum(size_of(p) for p in files_in(candidate)),
        "classes": training["classes"],
        "metrics": {k: evaluation[k] for k in ("accuracy", "macro_f1", "per_class", "confusion_matrix", "rows")},
        "baselines": evaluation["baselines"],
        "champion_at_evaluation": evaluation.get("champion"),
        "gate": decision,
    }
    if kind == ModelKind.VERTEX:
        metadata["vertex"] = training["vertex"]
    # The intervals, paired differences and calibration behind the gate, for the card.
    uncertainty: dict[str, Any] = {
        k: evaluation[k] for k in ("comparison", "calibration", "cross_validation") if k in evaluation
    }
    if uncertainty:
        metadata["uncertainty"] = uncertainty
    write_text(render_model_card(metadata, manifest), candidate / MODEL_CARD_FILE)
    folder, published = registry.register(candidate, metadata)
    promoted = False
    if decision["promote"]:
        promoted = registry.promote(version, _gate_reason(decision), params.actor, expected=decision["champion"])
        if not promoted:
            log.warning(
                "not promoted: the champion changed while this run evaluated against %s; "
                "re-run training to compare with the new champion",
                decision["champion"],
            )
    champion = registry.champion()
    log.info("model %s registered%s; champion is %s", version, "" if published else " (already)", champion)
    stored = registry.metadata(version)
    registered = tuple(
        Artifact.of_file(folder / name, ArtifactKind.MODEL)
        for name in (MODEL_FILES[kind], METADATA_FILE, MODEL_CARD_FILE)
    )
    return StepResult(
        subject=version,
        # A version registered before keeps its original producer: this run only read it.
        outputs=registered if published else (),
        metrics={
            "model_version": version,
            "dataset_version": stored["dataset_version"],
            "accuracy": stored["metrics"]["accuracy"],
            "macro_f1": stored["metrics"]["macro_f1"],
            "newly_registered": published,
            "gate": decision["verdict"],
            "promoted": promoted,
            "champion": champion,
        },
    )


def _gate_reason(decision: GateRecord) -> str:
    return "gate: " + "; ".join(decision["reasons"])


def register_candidate(
    params: RegisterParams,
    candidate_model: StoragePath,
    evaluation_file: StoragePath,
    decision_file: StoragePath,
    manifest_file: StoragePath,
) -> StepResult:
    """:func:`register_model` from the files the training steps wrote: the candidate's
    model file (its folder holds ``training.json``), its ``evaluation.json``, the gate's
    ``decision.json`` and the dataset's ``manifest.json``."""
    return register_model(
        params,
        candidate_model.parent,
        read_json(evaluation_file),
        read_json(decision_file),
        read_json(candidate_model.parent / TRAINING_FILE),
        read_json(manifest_file),
    )
