"""Page-number pagination for every list: ``?page=2&page_size=100``."""

from typing import Any

from rest_framework.pagination import PageNumberPagination


class ApiPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    page_query_description = "The page to answer, from 1."
    page_size_query_description = "Items per page (default 50, at most 500)."
    max_page_size = 500

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paginated = super().get_paginated_response_schema(schema)
        descriptions = {
            "count": "How many items there are in all pages.",
            "next": "The next page's address; null on the last page.",
            "previous": "The previous page's address; null on the first page.",
            "results": "This page's items.",
        }
        for name, text in descriptions.items():
            paginated["properties"][name]["description"] = text
        return paginated
