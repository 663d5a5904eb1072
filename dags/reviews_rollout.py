"""
### reviews_rollout

Every hour, move the controlled roll-out of a challenger model one step, gated on live
traffic (docs/serving.md, "Roll-out"). The plan is `models/rollout.json` in the registry:
champion, challenger, stage, canary share. `reviewops serve` reads it and routes:

- **shadow**: the challenger scores a copy of every request; the champion answers;
- **canary**: the challenger answers `canary_share` of the requests (sticky by request key);
- **full**: the challenger is promoted; it is the champion.

Tasks:

1. **start_rollout**: conf `{"challenger": "m-…"}` puts that registered version in shadow
   (refused while another roll-out is active); without it, nothing starts.
2. **evaluate_rollout**: the challenger's rows of the current stage in the request log
   (`serving/requests/date=…`): error rate, p95 latency, agreement with the champion,
   accuracy against ratings that arrived (`serving/feedback/`); the decision: advance,
   hold (too little traffic or time yet) or roll back (a limit breached), written to
   `serving/rollout/<roll-out>/gate-<time>.json`.
3. **apply_rollout**: carries it out; each stage change is a line in the promotion history
   (`reviewops models history`) and this task's lineage record.
4. **check_rollout**: fails, without retry, when the run rolled back, and the
   `reviewops_alerts` webhook gets the breaches.

Limits: Param `thresholds` (e.g. `{"min_rows": 500, "min_agreement": 0.9}`) over the
defaults of `RolloutThresholds`. No active roll-out: every task succeeds doing nothing.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from reviewops_airflow.dag_defaults import START_DATE, task_defaults
from reviewops_airflow.notifiers import ALERT_CONN_ID, WebhookAlertNotifier
from reviewops_airflow.params import data_root_param, model_version_param
from reviewops_airflow.rollout import (
    ApplyRolloutOperator,
    CheckRolloutOperator,
    EvaluateRolloutOperator,
    StartRolloutOperator,
    canary_share_param,
    rollout_thresholds_param,
)

with DAG(
    dag_id="reviews_rollout",
    doc_md=__doc__,
    schedule="@hourly",  # a point in time is all it needs: metrics are read since the stage began
    start_date=START_DATE,
    catchup=False,  # a missed hour is not worth a run: the next one reads the same traffic and more
    max_active_runs=1,  # two runs would evaluate and move the same plan at once
    tags=["reviewops", "serving", "rollout"],
    default_args=task_defaults(retries=1),
    dagrun_timeout=timedelta(minutes=30),
    params={
        "challenger": model_version_param("Start a roll-out of this registered Keras version (in shadow)."),
        "canary_share": canary_share_param(),
        "thresholds": rollout_thresholds_param(),
        "data_root": data_root_param(),
    },
    render_template_as_native_obj=True,
) as dag:
    start_rollout = StartRolloutOperator(
        task_id="start_rollout", challenger="{{ params.challenger }}", canary_share="{{ params.canary_share }}"
    )
    evaluate_rollout = EvaluateRolloutOperator(task_id="evaluate_rollout", thresholds="{{ params.thresholds }}")
    apply_rollout = ApplyRolloutOperator(
        task_id="apply_rollout", upstream={"evaluation": "evaluate_rollout"}, thresholds="{{ params.thresholds }}"
    )
    check_rollout = CheckRolloutOperator(
        task_id="check_rollout",
        upstream={"applied": "apply_rollout"},
        on_failure_callback=WebhookAlertNotifier(conn_id=ALERT_CONN_ID),
    )

    start_rollout >> evaluate_rollout >> apply_rollout >> check_rollout
