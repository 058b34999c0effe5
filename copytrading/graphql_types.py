"""GraphQL scalars shared by the apps' schemas."""

from decimal import Decimal

import graphene
from graphql.language import ast

from copytrading.money import q8


class Money(graphene.Scalar):
    """An amount as a string with exactly 8 places ("0.00000000", never
    "0E-8"), as in the REST API."""

    @staticmethod
    def serialize(value) -> str:
        return format(q8(Decimal(value)), "f")

    @staticmethod
    def parse_literal(node, _variables=None):
        if isinstance(node, ast.StringValueNode | ast.IntValueNode | ast.FloatValueNode):
            return Decimal(node.value)
        return graphene.types.scalars.Undefined

    @staticmethod
    def parse_value(value):
        return Decimal(str(value))
