"""REST endpoints of the notifications room: the user's own notifications
(paged, newest first), the unread count, read marks and preferences."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import paging
from copytrading.errors import DomainError
from copytrading.notifications import selectors, services
from copytrading.notifications.kinds import KINDS
from copytrading.notifications.models import Notification, SeverityChoice

UNREAD_PARAMETER = OpenApiParameter(
    "unread", str, enum=["true", "false"], description="true: only unread ones; false: only read ones"
)


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "kind", "severity", "title", "body", "data", "created_at", "read_at"]


class NotificationUnreadCountSerializer(serializers.Serializer):
    unread = serializers.IntegerField()


class NotificationReadAllSerializer(serializers.Serializer):
    marked = serializers.IntegerField(help_text="how many were unread (0 when called again)")
    unread = serializers.IntegerField()


class NotificationPreferenceSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="one of the kinds GET lists")
    severity = serializers.ChoiceField(choices=SeverityChoice.choices, read_only=True)
    audience = serializers.ChoiceField(choices=["follower", "leader"], read_only=True)
    in_app = serializers.BooleanField()
    email = serializers.BooleanField()
    default_in_app = serializers.BooleanField(read_only=True)
    default_email = serializers.BooleanField(read_only=True)
    enabled = serializers.BooleanField(
        read_only=True, help_text="false: the platform sends this kind to no one (trade_copied unless turned on)"
    )


class NotificationPreferencesSerializer(serializers.Serializer):
    preferences = NotificationPreferenceSerializer(many=True)


class NotificationPreferenceChoiceSerializer(serializers.Serializer):
    kind = serializers.CharField(
        max_length=50, help_text="one of the kinds GET lists; else 400 UNKNOWN_NOTIFICATION_KIND"
    )
    in_app = serializers.BooleanField()
    email = serializers.BooleanField()


class NotificationPreferencesUpdateSerializer(serializers.Serializer):
    preferences = serializers.ListField(
        child=NotificationPreferenceChoiceSerializer(),
        max_length=len(KINDS) * 2,
        help_text="kinds not given keep their setting",
    )


def _unread_filter(params) -> bool | None:
    raw = params.get("unread")
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise DomainError("INVALID_CHOICE", "unread is one of true, false.", field="unread")
    return raw == "true"


class NotificationListView(APIView):
    """The user's notifications, newest first."""

    @extend_schema(
        parameters=[UNREAD_PARAMETER, *paging.PAGE_PARAMETERS],
        responses=paging.page_serializer(NotificationSerializer),
    )
    def get(self, request):
        rows = selectors.notifications_of(request.user, unread=_unread_filter(request.query_params))
        return paging.queryset_page(rows, NotificationSerializer, request, self)


class NotificationUnreadCountView(APIView):
    @extend_schema(responses=NotificationUnreadCountSerializer)
    def get(self, request):
        return Response({"unread": selectors.unread_count(request.user)})


class NotificationReadView(APIView):
    """Mark one notification read (again: no change). Another user's is 404."""

    @extend_schema(request=None, responses=NotificationSerializer)
    def post(self, request, pk):
        row = services.notification_mark_read(user=request.user, notification_id=pk)
        return Response(NotificationSerializer(row).data)


class NotificationReadAllView(APIView):
    """Mark every notification read; calling it again marks nothing."""

    @extend_schema(request=None, responses=NotificationReadAllSerializer)
    def post(self, request):
        marked = services.notifications_mark_all_read(user=request.user)
        return Response({"marked": marked, "unread": selectors.unread_count(request.user)})


class NotificationPreferencesView(APIView):
    """Per kind: in-app and e-mail on or off. Defaults: in-app on, e-mail
    for high and critical kinds (trade_copied is only ever sent when the
    platform turns it on)."""

    @extend_schema(responses=NotificationPreferencesSerializer)
    def get(self, request):
        return Response({"preferences": selectors.preferences_of(request.user)})

    @extend_schema(request=NotificationPreferencesUpdateSerializer, responses=NotificationPreferencesSerializer)
    def put(self, request):
        s = NotificationPreferencesUpdateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        services.notification_preferences_set(
            user=request.user, choices=[(p["kind"], p["in_app"], p["email"]) for p in s.validated_data["preferences"]]
        )
        return Response({"preferences": selectors.preferences_of(request.user)})
