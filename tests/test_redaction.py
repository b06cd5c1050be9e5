from __future__ import annotations

import pytest

from strokeops.redaction import without_credentials


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "API request to http://alice:tr4ck@127.0.0.1:9/api/2.0 failed",
            "API request to http://***@127.0.0.1:9/api/2.0 failed",
        ),
        ("postgresql+psycopg2://u:p%40ss@db/mlflow", "postgresql+psycopg2://***@db/mlflow"),
        ("http://alice:p@ssSECRET@127.0.0.1:9/api", "http://***@127.0.0.1:9/api"),
        ("s3://token@bucket/key and https://h/x", "s3://***@bucket/key and https://h/x"),
        ("no URL here; user@example.org stays", "no URL here; user@example.org stays"),
    ],
)
def test_url_credentials_are_masked(text: str, expected: str) -> None:
    assert without_credentials(text) == expected
