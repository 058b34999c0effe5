"""REST endpoints for copy templates: the platform defaults, and the leader's
custom templates of a portfolio (CRUD by the owner, readable by followers of
a public portfolio so they can subscribe with one)."""

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from copytrading import paging
from copytrading.bounds import int_bounds, max_length
from copytrading.serializers import MoneyField
from copytrading.sizing import SizingModel
from portfolios import copy_templates
from portfolios.models import CopyTemplate, Portfolio

PCT = {"max_digits": 12, "decimal_places": 8}


class OptionalBooleanField(serializers.BooleanField):
    """Left out of a form-encoded body means "not given", as in JSON."""

    default_empty_html = serializers.empty


class TemplateSerializer(serializers.Serializer):
    id = serializers.CharField(help_text='"conservative", "balanced", "aggressive", or a custom template id')
    name = serializers.CharField()
    description = serializers.CharField()
    platform = serializers.BooleanField()
    sizing_model = serializers.CharField()
    multiplier = serializers.DecimalField(max_digits=12, decimal_places=8, allow_null=True)
    fixed_notional = MoneyField(allow_null=True)
    risk_factor = serializers.DecimalField(max_digits=12, decimal_places=8, allow_null=True)
    leverage_override = serializers.IntegerField(allow_null=True)
    copy_margin = serializers.BooleanField()
    copy_spot = serializers.BooleanField()
    slippage_tolerance_pct = serializers.DecimalField(max_digits=5, decimal_places=2)
    daily_loss_realized_pct = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)
    daily_loss_unrealized_pct = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)
    margin_call_level_pct = serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True)
    max_drawdown_pct = serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True)
    max_open_positions = serializers.IntegerField(allow_null=True)
    max_exposure_pct = serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True)


def _body(view: copy_templates.TemplateView) -> dict:
    return TemplateSerializer(
        {"id": view.id, "name": view.name, "description": view.description, "platform": view.platform, **view.values}
    ).data


class TemplateWriteSerializer(serializers.Serializer):
    """Every field optional (PATCH changes only what is given); the ranges
    are checked by the service, the same as at subscribe."""

    name = serializers.CharField(max_length=max_length(CopyTemplate, "name"), required=False)
    description = serializers.CharField(
        max_length=max_length(CopyTemplate, "description"), required=False, allow_blank=True
    )
    sizing_model = serializers.ChoiceField(choices=SizingModel.ALL, required=False)
    multiplier = serializers.DecimalField(**PCT, required=False, allow_null=True)
    fixed_notional = MoneyField(required=False, allow_null=True)
    risk_factor = serializers.DecimalField(**PCT, required=False, allow_null=True)
    leverage_override = serializers.IntegerField(
        **int_bounds(CopyTemplate, "leverage_override"), required=False, allow_null=True
    )
    copy_margin = OptionalBooleanField(required=False)
    copy_spot = OptionalBooleanField(required=False)
    slippage_tolerance_pct = serializers.DecimalField(**PCT, required=False)
    daily_loss_realized_pct = serializers.DecimalField(**PCT, required=False, allow_null=True)
    daily_loss_unrealized_pct = serializers.DecimalField(**PCT, required=False, allow_null=True)
    margin_call_level_pct = serializers.DecimalField(**PCT, required=False, allow_null=True)
    max_drawdown_pct = serializers.DecimalField(**PCT, required=False, allow_null=True)
    max_open_positions = serializers.IntegerField(
        **int_bounds(CopyTemplate, "max_open_positions"), required=False, allow_null=True
    )
    max_exposure_pct = serializers.DecimalField(**PCT, required=False, allow_null=True)


class TemplateCreateSerializer(TemplateWriteSerializer):
    name = serializers.CharField(max_length=max_length(CopyTemplate, "name"))


def _readable_portfolio(request, pk) -> Portfolio:
    return get_object_or_404(Portfolio.objects.filter(Q(is_public=True) | Q(leader=request.user)), pk=pk)


def _own_portfolio(request, pk) -> Portfolio:
    return get_object_or_404(Portfolio, pk=pk, leader=request.user)


PLATFORM_ORDER = {t.id: n for n, t in enumerate(copy_templates.default_templates())}


def _template_key(view: copy_templates.TemplateView) -> tuple[int, int]:
    # The platform defaults first (in their fixed order), then custom ones by id.
    return (0, PLATFORM_ORDER[view.id]) if view.platform else (1, int(view.id))


def _template_page(request, view, templates: list[copy_templates.TemplateView]) -> Response:
    # A handful of rows built in Python (the defaults are constants, not rows).
    paginator = paging.CursorPagination(scope="templates")
    rows = paginator.paginate_sequence(templates, request, key=_template_key, view=view)
    return paginator.get_paginated_response([_body(t) for t in rows])


class DefaultTemplateListView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(TemplateSerializer))
    def get(self, request):
        return _template_page(request, self, copy_templates.default_templates())


class PortfolioTemplateListView(APIView):
    @extend_schema(parameters=paging.PAGE_PARAMETERS, responses=paging.page_serializer(TemplateSerializer))
    def get(self, request, pk):
        return _template_page(request, self, copy_templates.templates_of(_readable_portfolio(request, pk)))

    @extend_schema(request=TemplateCreateSerializer, responses={201: TemplateSerializer})
    def post(self, request, pk):
        portfolio = _own_portfolio(request, pk)
        s = TemplateCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = dict(s.validated_data)
        template = copy_templates.copy_template_create(portfolio=portfolio, **data)
        view = copy_templates.template_resolve(portfolio=portfolio, template=template.pk)
        return Response(_body(view), status=status.HTTP_201_CREATED)


class PortfolioTemplateDetailView(APIView):
    def _template(self, request, pk, template_pk) -> CopyTemplate:
        return get_object_or_404(CopyTemplate, pk=template_pk, portfolio=_own_portfolio(request, pk))

    @extend_schema(request=TemplateWriteSerializer, responses=TemplateSerializer)
    def patch(self, request, pk, template_pk):
        template = self._template(request, pk, template_pk)
        s = TemplateWriteSerializer(data=request.data, partial=True)
        s.is_valid(raise_exception=True)
        template = copy_templates.copy_template_update(template=template, **s.validated_data)
        return Response(_body(copy_templates.template_resolve(portfolio=template.portfolio, template=template.pk)))

    @extend_schema(responses={204: None})
    def delete(self, request, pk, template_pk):
        copy_templates.copy_template_delete(template=self._template(request, pk, template_pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
