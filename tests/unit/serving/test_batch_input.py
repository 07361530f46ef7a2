"""decide-batch's input file: what it refuses, with a message naming the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import DataError
from nextbest.serving.batch import read_customers


def customers(spend: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [f"C{i}" for i in range(len(spend))], "spend": spend, "tier": "gold"})


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_an_infinite_feature_is_refused_naming_the_column_and_a_customer(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"in.{kind}"
    frame = customers([1.0, np.inf, 3.0, -np.inf])
    frame.to_parquet(path) if kind == "parquet" else frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column 'spend' has 2 infinite value\(s\) \(first for customer_id C1\)"):
        read_customers(path)


def test_missing_values_are_not_infinite_ones(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    customers([1.0, np.nan, 3.0]).to_parquet(path)
    frame = read_customers(path)
    assert frame["customer_id"].tolist() == ["C0", "C1", "C2"] and np.isnan(frame["spend"].iloc[1])
