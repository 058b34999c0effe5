"""``manage.py copying pause|resume [--portfolio ID] [--reason TEXT] [--actor USERNAME] [--dry-run]``:
the kill switch from a shell (copytrading/live/services.py; docs/decisions.md
§72). Without ``--portfolio`` it acts on all copying; pausing needs a
reason (followers see it). ``--dry-run`` says what it would do and writes
nothing. Audited like the admin's switch, with ``--actor``'s user (the staff
member at the shell) or, without it, the system.

Exit code: 0 done (or would be), 1 nothing to do (already paused / not
paused), 2 bad input (no reason to pause or one too long, no such portfolio
or actor) or the database unreachable."""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from copytrading import live
from copytrading.errors import DomainError
from copytrading.live import services
from copytrading.ops.exits import cannot_run_on_outage
from portfolios.models import Portfolio

DONE, NOTHING, BAD_INPUT = 0, 1, 2


class Command(BaseCommand):
    help = "Pause or resume all copying, or one portfolio's (the kill switch)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["pause", "resume"])
        parser.add_argument("--portfolio", type=int, default=None, help="only this portfolio (its id)")
        parser.add_argument("--reason", default="", help="why (required to pause; shown to followers)")
        parser.add_argument("--actor", default="", help="the staff username the audit trail names (default: system)")
        parser.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")

    def handle(
        self, *args, action: str, portfolio: int | None, reason: str, actor: str, dry_run: bool, **options
    ) -> None:
        with cannot_run_on_outage(f"{action} copying"):
            code = self.run(action, portfolio, reason.strip(), actor.strip(), dry_run)
        if code:
            sys.exit(code)

    def run(self, action: str, portfolio: int | None, reason: str, actor_name: str, dry_run: bool) -> int:
        if action == "pause" and not reason:
            self.stderr.write("a --reason is required to pause copying (followers see it)")
            return BAD_INPUT
        if reason:
            try:
                services.halt_reason_checked(reason)
            except DomainError as exc:
                self.stderr.write(exc.detail)
                return BAD_INPUT
        actor = None
        if actor_name:
            actor = get_user_model().objects.filter(username=actor_name, is_staff=True).first()
            if actor is None:
                self.stderr.write(f"no staff user named {actor_name!r}")
                return BAD_INPUT
        if portfolio is not None and not Portfolio.objects.filter(pk=portfolio).exists():
            self.stderr.write(f"portfolio {portfolio} does not exist")
            return BAD_INPUT
        scope = "all copying" if portfolio is None else f"copying of portfolio {portfolio}"
        view = live.load()
        halted = view.copying_halted if portfolio is None else portfolio in view.portfolio_halts
        if (action == "pause") == halted:
            self.stdout.write(f"{scope} is already {'paused' if halted else 'running'}: nothing to do")
            return NOTHING
        if dry_run:
            self.stdout.write(f"would {action} {scope}" + (f" ({reason})" if reason else "") + "; nothing written")
            return DONE
        try:
            if portfolio is None:
                if action == "pause":
                    changed = services.halt_all(reason=reason, actor=actor)
                else:
                    changed = services.resume_all(reason=reason, actor=actor)
            elif action == "pause":
                changed = services.halt_portfolio(portfolio, reason=reason, actor=actor)
            else:
                changed = services.resume_portfolio(portfolio, reason=reason, actor=actor)
        except DomainError as exc:
            self.stderr.write(exc.detail)
            return BAD_INPUT
        if not changed:  # someone else did it meanwhile
            self.stdout.write(f"{scope}: nothing to do")
            return NOTHING
        self.stdout.write(f"{scope} {'paused' if action == 'pause' else 'resumed'}")
        return DONE
