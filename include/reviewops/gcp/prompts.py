"""Versioned prompt templates for the foundation-model backend (Vertex AI Gemini).

Templates live in ``include/reviewops/gcp/prompt_templates/<name>/v<N>.toml`` (see the README there). A
template is identified by ``name@vN`` and by the sha256 of its file: that hash goes
into the lineage record of every step that used it, so a prediction names the exact
prompt that produced it.
"""

from __future__ import annotations

import hashlib
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reviewops.data.schema import CLASSES

PROMPTS_DIR = Path(__file__).resolve().parent / "prompt_templates"
DEFAULT_PROMPT = "review_sentiment"
PLACEHOLDERS = frozenset({"product", "condition", "text"})

_FILE = re.compile(r"^v(\d+)\.toml$")
_REF = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?:@v?(?P<version>\d+))?$")
_ANSWER_STRIP = re.compile(r"[^a-z]+")


class PromptError(ValueError):
    """A template that is missing, malformed or unusable."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    description: str
    system_instruction: str
    user_template: str
    answers: Mapping[str, str]
    generation: Mapping[str, Any] = field(default_factory=dict)
    sha256: str = ""
    path: str = ""

    @property
    def ref(self) -> str:
        """``name@vN``: how runs, lineage and predictions name the template."""
        return f"{self.name}@v{self.version}"

    def render(self, review: Mapping[str, Any]) -> str:
        """The user turn for one review (missing fields render as ``unknown``)."""
        values = {key: _field(review.get(key)) for key in PLACEHOLDERS}
        return self.user_template.format_map(values)

    def parse_answer(self, text: str | None) -> str | None:
        """The canonical class of the model's answer, or None when it is not one of
        the template's answers (read case-insensitively, first word, punctuation off)."""
        if not text:
            return None
        words = text.strip().lower().split()
        if not words:
            return None
        return self.answers.get(_ANSWER_STRIP.sub("", words[0]))

    def lineage(self) -> dict[str, Any]:
        return {"prompt_template": self.ref, "prompt_sha256": self.sha256}


def _field(value: Any) -> str:
    if value is None:
        return "unknown"
    text = str(value).strip()
    return text or "unknown"


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name``, ``name@v2`` or ``name@2`` -> (name, version or None for the latest)."""
    match = _REF.match(ref.strip())
    if not match:
        raise PromptError(f"{ref!r} is not a prompt reference: use NAME or NAME@vN, e.g. {DEFAULT_PROMPT}@v1")
    version = match.group("version")
    return match.group("name"), int(version) if version else None


def versions(name: str, root: Path = PROMPTS_DIR) -> list[int]:
    folder = root / name
    if not folder.is_dir():
        return []
    found = (_FILE.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def list_templates(root: Path = PROMPTS_DIR) -> list[PromptTemplate]:
    """Every template version, by name then version."""
    if not root.is_dir():
        return []
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    return [load_template(f"{name}@v{v}", root) for name in names for v in versions(name, root)]


def load_template(ref: str = DEFAULT_PROMPT, root: Path = PROMPTS_DIR) -> PromptTemplate:
    """Load ``name@vN`` (or the latest version of ``name``) and check it."""
    name, version = parse_ref(ref)
    available = versions(name, root)
    if not available:
        known = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) if root.is_dir() else "none"
        raise PromptError(f"no prompt template named {name!r} under {root} (known: {known})")
    if version is None:
        version = available[-1]
    if version not in available:
        raise PromptError(f"prompt {name!r} has no version {version} (versions: {available})")
    path = root / name / f"v{version}.toml"
    data = path.read_bytes()
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PromptError(f"{path}: not valid TOML: {exc}") from exc
    template = _build(raw, path, hashlib.sha256(data).hexdigest())
    if (template.name, template.version) != (name, version):
        raise PromptError(f"{path}: says name={template.name!r} version={template.version}; it must match its path")
    return template


def _build(raw: dict[str, Any], path: Path, sha256: str) -> PromptTemplate:
    missing = [k for k in ("name", "version", "system_instruction", "user_template", "answers") if k not in raw]
    if missing:
        raise PromptError(f"{path}: missing {', '.join(missing)}")
    used = {f for _, f, _, _ in string.Formatter().parse(raw["user_template"]) if f is not None}
    unknown = used - PLACEHOLDERS
    if unknown:
        raise PromptError(f"{path}: unknown placeholders {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}")
    if "text" not in used:
        raise PromptError(f"{path}: user_template must contain {{text}}")
    answers = {str(k).lower(): str(v) for k, v in raw["answers"].items()}
    bad = sorted(set(answers.values()) - set(CLASSES))
    if bad or set(answers.values()) != set(CLASSES):
        raise PromptError(
            f"{path}: answers must map onto exactly the classes {list(CLASSES)} (got {sorted(set(answers.values()))})"
        )
    return PromptTemplate(
        name=str(raw["name"]),
        version=int(raw["version"]),
        description=str(raw.get("description", "")),
        system_instruction=str(raw["system_instruction"]),
        user_template=str(raw["user_template"]),
        answers=answers,
        generation=dict(raw.get("generation", {})),
        sha256=sha256,
        path=str(path),
    )
