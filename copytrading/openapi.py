"""The OpenAPI schema tells the truth about every operation.

Declared once, here, rather than per view:
- every operation documents the shared error answers (``ERROR_STATUSES``)
  with the project's error body (``ErrorSerializer``), because any of them can
  come from the exception handler, the middleware or the throttles whatever
  the view;
- request bodies are JSON only (the API parses nothing else);
- a decimal in a request is a string with at least one digit, and without a
  sign where the field has a non-negative minimum: the pattern
  drf-spectacular derives accepts ``""``, ``"-"`` and ``"."``, which no
  serializer takes.
"""

from decimal import Decimal

from drf_spectacular import openapi
from rest_framework import serializers

# 400 malformed, 401 no/invalid credentials, 403 not allowed, 404 not found or
# not yours, 409 conflicts with the current state, 413 body too large, 415 not
# JSON, 429 throttled or locked out, 503 a backing service is down.
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 429, 503)


class ErrorItemSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A stable machine code, e.g. OUT_OF_RANGE.")
    detail = serializers.CharField(help_text="A sentence for a human.")
    field = serializers.CharField(allow_null=True, help_text="The offending field's dotted path, or null.")


class ErrorSerializer(ErrorItemSerializer):
    """Every error under /api/: ``{"code", "detail", "field"}``; a validation
    error may list every invalid field in ``errors``, a throttle or an outage
    says when to retry in ``retry_after`` (seconds, also the Retry-After header)."""

    errors = ErrorItemSerializer(many=True, required=False)
    retry_after = serializers.IntegerField(required=False, min_value=0)


class AutoSchema(openapi.AutoSchema):
    def get_operation_id(self) -> str:
        """A GET answering a page is ``…_list`` (as drf-spectacular names a bare
        list), so a list keeps its operation id now that it is an object."""
        operation_id = super().get_operation_id()
        response = self.get_response_serializers()
        if isinstance(response, dict) and response:
            response = response.get(200, next(iter(response.values())))
        if self.method == "GET" and getattr(response, "is_page", False) and operation_id.endswith("_retrieve"):
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in ERROR_STATUSES:
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    ErrorSerializer, str(status), ["application/json"], direction
                )
        return responses

    def map_parsers(self):
        return ["application/json"]

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(field, serializers.DecimalField) and "pattern" in schema:
            whole = field.max_whole_digits
            places = field.decimal_places
            sign = "" if field.min_value is not None and Decimal(field.min_value) >= 0 else "-?"
            fraction = rf"(?:\.\d{{0,{places}}})?" if places else ""
            schema["pattern"] = rf"^{sign}\d{{1,{max(whole, 1)}}}{fraction}$"
        return schema
