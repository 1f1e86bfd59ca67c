"""api/responses.py: an object assembled from stored JSON is the JSON orjson makes of the values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from api.responses import json_object

CASES: list[tuple[dict[str, list[Any]], dict[str, Any]]] = [
    ({"items": [{"b": 1, "a": [None, 2.5]}, {"k": 'ü"\\n'}]}, {"total": 2, "limit": 10, "offset": 0}),
    ({"items": []}, {"total": 0}),
    ({"items": [1]}, {}),
    ({"a": [True], "b": [{"x": {}}]}, {"c": None}),
]


@pytest.mark.parametrize(("lists", "rest"), CASES)
def test_json_object_is_what_orjson_makes_of_the_decoded_values(
    lists: dict[str, list[Any]], rest: dict[str, Any]
) -> None:
    encoded = {key: [orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values] for key, values in lists.items()}
    made = json_object(encoded, rest)
    decoded = {key: [orjson.loads(v) for v in values] for key, values in encoded.items()}
    assert made == orjson.dumps({**decoded, **rest})
    assert orjson.loads(made) == {**lists, **rest}
