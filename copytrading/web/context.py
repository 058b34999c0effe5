"""What every client page's layout shows (templates/web/base.html)."""

from django.utils.functional import SimpleLazyObject


def navigation(request) -> dict:
    """The unread notification count, read only when a template shows it
    (the admin's pages never do)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def count() -> int:
        from copytrading.notifications.selectors import unread_count

        return unread_count(user)

    return {"nav_unread": SimpleLazyObject(count)}
