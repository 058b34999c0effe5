"""Every write of the notifications room: ``notify`` (the one way any app
notifies), reading marks, preferences and the e-mail claim.

``notify`` is set-based: a call with thousands of notes costs one query for
the recipients' preferences and one multi-row INSERT per 1,000 notes
(``ON CONFLICT (dedup_key) DO NOTHING RETURNING``), and nothing at all when
there is nothing to notify. After the commit it hands the new e-mail work to
a task (batched by recipient) and the new ids per user to the notification
listeners (the seam the live stream subscribes to)."""

import logging
import smtplib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from copytrading import changes, live
from copytrading.errors import DomainError, NotFound
from copytrading.notifications.kinds import KINDS, kind
from copytrading.notifications.models import EmailStatus, Notification, NotificationPreference
from copytrading.outages import after_commit, dispatch_on_commit

log = logging.getLogger(__name__)

# Notes per INSERT statement (PostgreSQL takes far more parameters; SQLite's
# limit is respected below).
INSERT_BATCH = 1000
# Recipients per e-mail task: a leader event reaching 10,000 followers makes
# 20 tasks, each sending at most one e-mail per recipient.
EMAIL_USERS_PER_TASK = 500
# A claim idle this long is taken as a sender that died (a sender renews its
# claim before each e-mail, and one send is bounded by EMAIL_TIMEOUT).
STUCK_SENDING = timedelta(minutes=10)
# Sends of one notification before its e-mail is given up (FAILED).
MAX_EMAIL_ATTEMPTS = 5
# A refused address does not get better with retries.
PERMANENT_EMAIL_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, ValueError)


@dataclass(frozen=True, slots=True)
class Note:
    """One notification to write. ``key`` names its source, unique across
    kinds (``subscribed:<subscription id>``, ``fee:<accrual id>``...): the
    same key twice is one notification. ``title``/``body`` override the
    kind's templates (rendered from ``data`` otherwise)."""

    user_id: int
    kind: str
    key: str
    data: dict = field(default_factory=dict)
    title: str | None = None
    body: str | None = None


NotificationListener = Callable[[dict[int, list[int]]], None]
_listeners: list[NotificationListener] = []


def register_notification_listener(listener: NotificationListener) -> None:
    """Have ``listener({user id: [new notification ids]})`` called after the
    commit of every ``notify`` that stored visible notifications (the live
    stream pushes them on the ``notifications`` topic). Registering twice is
    a no-op; a listener that raises is logged, never undoes the commit."""
    if listener not in _listeners:
        _listeners.append(listener)


def notification_listeners() -> tuple[NotificationListener, ...]:
    return tuple(_listeners)


def trade_copied_enabled() -> bool:
    """ "Trade copied" is off unless the platform turns it on (SPEC §8:
    triggers are enabled globally: live settings); the fan-out asks before
    building notes (a cached read)."""
    return live.current().notify_trade_copied


# --- notify ------------------------------------------------------------------------


def notify(notes: Sequence[Note], *, now: datetime | None = None) -> list[int]:
    """Store ``notes`` (each once: a key already stored is skipped) in the
    caller's transaction, honouring each recipient's preferences. Returns
    the ids of the notifications it stored."""
    if not notes:
        return []
    now = now or timezone.now()
    prefs = _preferences({n.user_id for n in notes}, {n.kind for n in notes})
    rows = []
    for n in notes:
        k = kind(n.kind)
        in_app, email = prefs.get((n.user_id, n.kind), (k.in_app, k.email))
        title, body = k.render(n.data)
        rows.append(
            (
                n.user_id,
                n.kind,
                k.severity.value,
                (n.title if n.title is not None else title)[:200],
                n.body if n.body is not None else body,
                n.data,
                n.key[:200],
                not in_app,
                now,
                EmailStatus.PENDING if email else EmailStatus.NONE,
            )
        )
    stored = _insert(rows)
    if not stored:
        return []
    emails: dict[int, list[int]] = defaultdict(list)
    visible: dict[int, list[int]] = defaultdict(list)
    for pk, user_id, hidden, email_status in stored:
        if email_status == EmailStatus.PENDING:
            emails[user_id].append(pk)
        if not hidden:
            visible[user_id].append(pk)
    if emails:
        _dispatch_emails(emails)
    if visible and _listeners:
        pushed = {user_id: sorted(ids) for user_id, ids in visible.items()}
        # Not an enqueue: a listener's failure must not trip the broker
        # back-off that ``dispatch_on_commit`` keeps for real dispatches.
        after_commit(lambda: _call_listeners(pushed), what="live push of new notifications")
    return sorted(pk for pk, *_ in stored)


def _preferences(users: set[int], kinds: set[str]) -> dict[tuple[int, str], tuple[bool, bool]]:
    rows = NotificationPreference.objects.filter(user_id__any=sorted(users), kind__any=sorted(kinds))
    return {(u, k): (in_app, email) for u, k, in_app, email in rows.values_list("user_id", "kind", "in_app", "email")}


COLUMNS = ("user_id", "kind", "severity", "title", "body", "data", "dedup_key", "hidden", "created_at", "email_status")


def _insert(rows: list[tuple]) -> list[tuple[int, int, bool, str]]:
    """Multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING (PostgreSQL and
    SQLite alike): the rows a replay already stored come back as nothing."""
    meta = Notification._meta
    fields = [meta.get_field(c.removesuffix("_id")) for c in COLUMNS]
    qn = connection.ops.quote_name
    names = ", ".join(qn(f.column) for f in fields)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = INSERT_BATCH
    if connection.features.max_query_params:
        per_statement = min(per_statement, connection.features.max_query_params // len(fields))
    stored = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            batch = rows[start : start + per_statement]
            params = [
                f.get_db_prep_save(value, connection) if value is not None else None
                for row in batch
                for f, value in zip(fields, row, strict=True)
            ]
            cursor.execute(
                f"INSERT INTO {qn(meta.db_table)} ({names}) VALUES {', '.join([placeholders] * len(batch))} "
                f"ON CONFLICT ({qn('dedup_key')}) DO NOTHING "
                f"RETURNING {qn('id')}, {qn('user_id')}, {qn('hidden')}, {qn('email_status')}",
                params,
            )
            stored.extend((pk, user_id, bool(hidden), status) for pk, user_id, hidden, status in cursor.fetchall())
    return stored


def _call_listeners(pushed: dict[int, list[int]]) -> None:
    """Each listener on its own: one that fails is logged, the next still runs
    (a client's next snapshot shows what a failed push missed)."""
    for listener in _listeners:
        try:
            listener(pushed)
        except Exception:
            log.exception("notification listener %r failed", listener)


def _dispatch_emails(emails: dict[int, list[int]]) -> None:
    """One task per EMAIL_USERS_PER_TASK recipients, after the commit; a
    recipient's notes of this call stay in one task (one e-mail)."""
    from copytrading.notifications.tasks import send_notification_emails

    users = sorted(emails)
    for start in range(0, len(users), EMAIL_USERS_PER_TASK):
        ids = sorted(pk for u in users[start : start + EMAIL_USERS_PER_TASK] for pk in emails[u])
        dispatch_on_commit(
            lambda ids=ids: send_notification_emails.delay(ids),
            what=f"e-mail of {len(ids)} notification(s); the e-mail sweeper sends them",
        )


# --- reading -----------------------------------------------------------------------


def notification_mark_read(*, user, notification_id: int) -> Notification:
    """Mark one of ``user``'s notifications read (again: a no-op). Another
    user's, or a hidden one, is NOT_FOUND."""
    row = Notification.objects.filter(pk=notification_id, user=user, hidden=False).first()
    if row is None:
        raise NotFound("notification")
    if row.read_at is None:
        now = timezone.now()
        # Conditional: two marks at once keep the first time.
        if Notification.objects.filter(pk=row.pk, read_at__isnull=True).update(read_at=now):
            row.read_at = now
            changes.touch(users=[row.user_id])
        else:
            row.refresh_from_db(fields=["read_at"])
    return row


def notifications_mark_all_read(*, user) -> int:
    """Mark every unread notification of ``user`` read; returns how many (0 the second time)."""
    marked = Notification.objects.filter(user=user, hidden=False, read_at__isnull=True).update(read_at=timezone.now())
    if marked:
        changes.touch(users=[user.pk])
    return marked


# --- preferences -------------------------------------------------------------------


def unknown_kind(code: object) -> DomainError:
    return DomainError("UNKNOWN_NOTIFICATION_KIND", f"{code!r} is not a notification kind.", field="kind")


@transaction.atomic
def notification_preferences_set(*, user, choices: Iterable[tuple[str, bool, bool]]) -> None:
    """Record ``(kind, in_app, email)`` choices (all or none: one unknown
    kind refuses the lot). A choice equal to the kind's defaults is kept as
    a row too: it pins the user's choice if a default changes later."""
    chosen: dict[str, tuple[bool, bool]] = {}
    for code, in_app, email in choices:
        if code not in KINDS:
            raise unknown_kind(code)
        chosen[code] = (in_app, email)  # the same kind twice: the last one counts
    rows = [NotificationPreference(user=user, kind=code, in_app=i, email=e) for code, (i, e) in chosen.items()]
    NotificationPreference.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["user", "kind"], update_fields=["in_app", "email", "updated_at"]
    )


# --- e-mail ------------------------------------------------------------------------


@dataclass(slots=True)
class EmailResult:
    claimed: int = 0
    sent: int = 0  # e-mails, at most one per recipient


def notification_emails_send(*, notification_ids: Sequence[int]) -> EmailResult:
    """Send the e-mails of these notifications, exactly once each.

    Claim first (PENDING → SENDING, committed; rows another sender holds are
    skipped), then, recipient by recipient (one e-mail each, a digest if
    several): renew the claim, send, mark SENT at once. So a failure part-way
    never sends the earlier recipients again, and a claim the sweeper took
    back (a sender idle for STUCK_SENDING: it died) is not sent here too. The
    one window left: a crash after the server took one message and before its
    SENT mark; the sweeper gives that recipient's rows back and they go again
    (at least once there, never lost). A refused address is permanent: its
    rows end FAILED. Any other error gives back this and the remaining
    recipients' rows (FAILED after MAX_EMAIL_ATTEMPTS) and re-raises for the
    task's retry."""
    result = EmailResult()
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(pk__any=sorted(set(notification_ids)), email_status=EmailStatus.PENDING)
            .order_by("pk")
            .values_list("pk", "user_id", "title", "body")
        )
        if not rows:
            return result
        claimed = [r[0] for r in rows]
        Notification.objects.filter(pk__any=claimed).update(
            email_status=EmailStatus.SENDING, email_claimed_at=timezone.now(), email_attempts=F("email_attempts") + 1
        )
    result.claimed = len(claimed)
    by_user: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        by_user[row[1]].append(row)
    addresses = dict(
        get_user_model().objects.filter(pk__any=sorted(by_user)).exclude(email="").values_list("pk", "email")
    )
    outgoing, no_address = [], []
    for user_id, notes in by_user.items():
        ids = [n[0] for n in notes]
        if user_id in addresses:
            outgoing.append((ids, _message(addresses[user_id], notes)))
        else:
            no_address.extend(ids)
    Notification.objects.filter(pk__any=no_address).update(email_status=EmailStatus.NONE)
    if not outgoing:
        return result
    with mail.get_connection() as conn:
        for position, (ids, message) in enumerate(outgoing):
            mine = Notification.objects.filter(pk__any=ids, email_status=EmailStatus.SENDING)
            if mine.update(email_claimed_at=timezone.now()) != len(ids):
                continue  # the sweeper took this claim back: another sender has it
            try:
                conn.send_messages([message])
            except PERMANENT_EMAIL_ERRORS:
                log.warning("e-mail to user of notifications %s refused; marked failed", ids, exc_info=True)
                mine.update(email_status=EmailStatus.FAILED)
                continue
            except Exception:
                _give_back([pk for rest, _ in outgoing[position:] for pk in rest])
                raise
            mine.update(email_status=EmailStatus.SENT, emailed_at=timezone.now())
            result.sent += 1
    return result


def _give_back(ids: list[int]) -> None:
    """Rows whose send failed: back to PENDING for the task's retry (stamped,
    so the sweeper leaves them to it for a while), or FAILED once they have
    had MAX_EMAIL_ATTEMPTS."""
    mine = Notification.objects.filter(pk__any=ids, email_status=EmailStatus.SENDING)
    mine.filter(email_attempts__gte=MAX_EMAIL_ATTEMPTS).update(email_status=EmailStatus.FAILED)
    mine.update(email_status=EmailStatus.PENDING, email_claimed_at=timezone.now())


def _message(address: str, notes: list[tuple]) -> mail.EmailMessage:
    if len(notes) == 1:
        _, _, title, body = notes[0]
        subject, text = title, body
    else:
        subject = f"{len(notes)} new notifications"
        text = "\n\n".join(f"{title}\n{body}" for _, _, title, body in notes)
    return mail.EmailMessage(subject=subject, body=text, to=[address])


def notification_emails_sweep(*, older_than: timedelta = timedelta(seconds=60)) -> int:
    """Dispatch the e-mails nobody dispatched (the broker was down at the
    commit), and give back claims of senders that died; returns how many
    notifications it handed to tasks. A row it hands over is stamped
    (``email_claimed_at``) and not handed over again for STUCK_SENDING, so a
    backed-up queue is not fed the same rows every minute."""
    now = timezone.now()
    Notification.objects.filter(email_status=EmailStatus.SENDING, email_claimed_at__lt=now - STUCK_SENDING).update(
        email_status=EmailStatus.PENDING, email_claimed_at=None
    )
    due = Q(email_claimed_at__isnull=True, created_at__lt=now - older_than) | Q(
        email_claimed_at__lt=now - STUCK_SENDING
    )
    rows = list(
        Notification.objects.filter(due, email_status=EmailStatus.PENDING)
        .order_by("pk")
        .values_list("pk", "user_id")[:50_000]
    )
    by_user: dict[int, list[int]] = defaultdict(list)
    for pk, user_id in rows:
        by_user[user_id].append(pk)
    from copytrading.notifications.tasks import send_notification_emails

    Notification.objects.filter(pk__any=[pk for pk, _ in rows], email_status=EmailStatus.PENDING).update(
        email_claimed_at=now
    )
    users = sorted(by_user)
    for start in range(0, len(users), EMAIL_USERS_PER_TASK):
        send_notification_emails.delay(
            sorted(pk for u in users[start : start + EMAIL_USERS_PER_TASK] for pk in by_user[u])
        )
    return len(rows)
