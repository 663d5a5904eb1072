"""The task instance the operator tests hand to ``execute``: identity, XCom pull and push."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StubTaskInstance:
    """``xcoms``: task_id -> its return value (or ``(task_id, key)`` -> a value pushed under
    another key). An unmapped stub (``map_index`` -1) checks that operators pull the
    unmapped XCom."""

    task_id: str
    xcoms: dict[Any, Any] = field(default_factory=dict)
    pushed: dict[str, Any] = field(default_factory=dict)
    dag_id: str = "reviews_test"
    run_id: str = "manual__test"
    try_number: int = 1
    map_index: int = -1

    def xcom_pull(self, task_ids: str, key: str = "return_value", map_indexes: Any = None, **_: Any) -> Any:
        assert map_indexes in (None, self.map_index), f"pulled map index {map_indexes} from {task_ids}"
        return self.xcoms.get(task_ids) if key == "return_value" else self.xcoms.get((task_ids, key))

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value
