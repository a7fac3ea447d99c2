"""Answer an ApprovalOperator that waits inside dag.test(), as a person would through the REST API.

dag.test() keeps a Human-in-the-loop task parked in awaiting_input until a response is recorded
from outside. This helper records it from a background thread through the same Airflow function the
API's PATCH .../hitlDetails calls (handle_event_submit with the detail's resume payload), so the
task resumes in execute_complete exactly as after a real answer. No Cassandra call is involved.
"""
from __future__ import annotations

import threading
import time


class Answer:
    def __init__(self, dag_id: str, *, task_id: str = "approve", choice: str = "Approve",
                 user_id: str = "alice-id", user_name: str = "alice", timeout: float = 600.0,
                 after=lambda: True):
        self.dag_id, self.task_id, self.choice = dag_id, task_id, choice
        self.after = after          # answer only once this says so (e.g. once an alert has arrived)
        self.user = {"id": user_id, "name": user_name}
        self.timeout = timeout
        self.answered_run: str | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hitl-answer", daemon=True)

    def __enter__(self) -> Answer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            while not self._stop.is_set() and time.monotonic() < deadline:
                if self.after() and self._answer_once():
                    return
                time.sleep(0.5)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc

    def _answer_once(self) -> bool:
        from airflow._shared.timezones import timezone
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        with create_session() as session:
            ti = session.scalars(select(TaskInstance).where(
                TaskInstance.dag_id == self.dag_id, TaskInstance.task_id == self.task_id,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT)).first()
            if ti is None:
                return False
            detail = session.scalars(select(HITLDetail).where(HITLDetail.ti_id == ti.id)).one()
            detail.responded_by = self.user
            detail.responded_at = timezone.utcnow()
            detail.chosen_options = [self.choice]
            detail.params_input = {}
            session.add(detail)
            handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)
            self.answered_run = ti.run_id
        return True
