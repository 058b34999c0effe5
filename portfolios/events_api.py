"""A leader's own event history: every leader event of a portfolio, its
propagation status and what it did to the followers."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from copytrading import paging, selectors
from copytrading.models import LeaderEventKind, LeaderEventStatus
from portfolios.api import my_portfolio


class EventOutcomesSerializer(serializers.Serializer):
    copied = serializers.IntegerField()
    skipped = serializers.IntegerField()
    rejected = serializers.IntegerField()
    failed = serializers.IntegerField()


class EventChunksSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class LeaderEventHistorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    seq = serializers.IntegerField(help_text="the portfolio's sequence number: events apply in this order")
    kind = serializers.ChoiceField(choices=LeaderEventKind.choices)
    payload = serializers.JSONField()
    status = serializers.ChoiceField(
        choices=LeaderEventStatus.choices,
        help_text="pending (waiting for a worker or for the portfolio's earlier events), propagating, done",
    )
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True, help_text="when a worker claimed it")
    completed_at = serializers.DateTimeField(allow_null=True, help_text="when its last chunk committed")
    chunks = EventChunksSerializer(help_text="propagation checkpoints of up to FANOUT_CHUNK_SIZE followers")
    outcomes = EventOutcomesSerializer(help_text="one execution row per follower reached, by outcome")


class PortfolioEventListView(APIView):
    """The portfolio's leader events, newest first (owner only; another
    leader's portfolio is 404)."""

    @extend_schema(
        parameters=paging.PAGE_PARAMETERS,
        responses=paging.page_serializer(LeaderEventHistorySerializer),
    )
    def get(self, request, pk):
        portfolio = my_portfolio(request, pk)
        # seq is unique per portfolio, so it alone is the keyset.
        paginator = paging.CursorPagination(ordering=("-seq",))
        events = paginator.paginate_queryset(selectors.leader_events_of(portfolio_id=portfolio.pk), request, view=self)
        progress = selectors.event_progress([e.pk for e in events])
        body = [
            {
                "id": e.pk,
                "seq": e.seq,
                "kind": e.kind,
                "payload": e.payload,
                "status": e.status,
                "created_at": e.created_at,
                "started_at": e.started_at,
                "completed_at": e.completed_at,
                "chunks": {"done": progress[e.pk].chunks_done, "total": progress[e.pk].chunks_total},
                "outcomes": {
                    "copied": progress[e.pk].copied,
                    "skipped": progress[e.pk].skipped,
                    "rejected": progress[e.pk].rejected,
                    "failed": progress[e.pk].failed,
                },
            }
            for e in events
        ]
        return paginator.get_paginated_response(LeaderEventHistorySerializer(body, many=True).data)
