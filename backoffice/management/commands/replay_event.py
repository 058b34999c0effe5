"""``manage.py replay_event EVENT_ID [--dry-run] [--wait SECONDS] [--quiet]``:
run a leader event's propagation again, the admin's "replay" action from a
shell (copytrading.events.leader_event_replay): a pending event is dispatched
again; a propagating or done one has its chunks re-queued, and each chunk
serves only the subscriptions that have no execution row for the event yet
(one row per event and subscription), so replaying an event that went
through changes nothing. ``--wait`` follows the chunks to the end with a
progress bar.

Exit code: 0 replayed (and, with --wait, done) or would be (--dry-run),
1 still not done when --wait ran out, or refused: the event's executions are
archived or older than the retention (a replay would copy it to every
follower again), 2 cannot run (no such event, the
broker or database unreachable: nothing is written)."""

import time

from django.core.management.base import BaseCommand

from copytrading import partitions
from copytrading.events import EventProgress, leader_event_progress, leader_event_replay
from copytrading.models import LeaderEventStatus
from copytrading.ops.exits import FINDINGS, broker_problem, cannot_run, cannot_run_on_outage
from copytrading.ops.progress import Progress, add_quiet_argument

POLL_SECONDS = 0.5


def _state(p: EventProgress) -> str:
    return (
        f"event {p.event_id} ({p.kind}, portfolio {p.portfolio_id}) is {p.status}: "
        f"{p.chunks_done}/{p.chunks} chunks done, {p.executions:,} execution rows"
    )


class Command(BaseCommand):
    help = "Replay a leader event's propagation (serves only followers without an execution row)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("event_id", type=int)
        parser.add_argument("--dry-run", action="store_true", help="say what a replay would do; write nothing")
        parser.add_argument("--wait", type=float, default=0, help="follow the propagation for up to SECONDS")
        add_quiet_argument(parser)

    def handle(self, *args, event_id: int, dry_run: bool, wait: float, **options) -> None:
        if wait < 0:
            raise cannot_run("--wait cannot be negative")
        with cannot_run_on_outage("replay the event"):
            before = leader_event_progress(event_id=event_id)
            if before is None:
                raise cannot_run(f"no leader event {event_id}")
            self.stdout.write(_state(before))
            refusal = partitions.replay_refusal(before.created_at)
            if refusal:
                self.stderr.write(f"event {event_id} cannot be replayed: {refusal}; nothing written")
                raise SystemExit(FINDINGS)
            if dry_run:
                if before.status == LeaderEventStatus.PENDING:
                    self.stdout.write("would dispatch it again; nothing written")
                else:
                    self.stdout.write(
                        f"would re-queue {before.chunks} chunks, serving only the followers without an "
                        "execution row; nothing written"
                    )
                return
            problem = broker_problem()
            if problem:
                raise cannot_run(f"the broker is unreachable ({problem}); nothing replayed")
            queued = leader_event_replay(event_id=event_id)
            self.stdout.write(
                f"event {event_id}: {queued} chunks re-queued" if queued else f"event {event_id}: dispatched again"
            )
            if wait and not self._follow(event_id, wait, options):
                raise SystemExit(FINDINGS)

    def _follow(self, event_id: int, seconds: float, options: dict) -> bool:
        """Progress over the event's chunks until it is done (True) or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        with Progress.for_command(self, options, f"event {event_id} chunks") as progress:
            while True:
                state = leader_event_progress(event_id=event_id)
                progress.update(state.chunks_done, state.chunks or None)
                if state.status == LeaderEventStatus.DONE:
                    self.stdout.write(_state(state))
                    return True
                if time.monotonic() >= deadline:
                    progress.close(stopped=True)
                    self.stdout.write(_state(state) + f"; not done after {seconds:g} s")
                    return False
                time.sleep(POLL_SECONDS)
