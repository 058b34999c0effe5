"""The OpenAPI schema class of the REST API (kept apart from copytrading.paging:
DRF imports the pagination class while drf-spectacular's AutoSchema imports DRF)."""

from drf_spectacular.openapi import AutoSchema


class PagedAutoSchema(AutoSchema):
    """Names a GET that answers a page ``…_list`` (as drf-spectacular names a
    bare list), so a list keeps its operation id now that it is an object."""

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        response = self.get_response_serializers()
        if isinstance(response, dict) and response:
            response = response.get(200, next(iter(response.values())))
        if self.method == "GET" and getattr(response, "is_page", False) and operation_id.endswith("_retrieve"):
            return operation_id.removesuffix("_retrieve") + "_list"
        return operation_id
