"""Training files keyed by string customer ids: canonical ids, CSV ids read as text, one customer in one split
whichever form its id takes, and a bad id named with its row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.errors import DataError
from nextbest.training.dataset import from_frame, load_file, split
from tests.unit.training.test_dataset import frame


def test_csv_ids_keep_their_leading_zeros(catalog: ActionCatalog, tmp_path: Path) -> None:
    df = frame(catalog)
    df["customer_id"] = [f"{i:08d}" if i % 2 else f"C{i:07d}" for i in range(len(df))]
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    ds = load_file(path, catalog)
    assert ds.frame["customer_id"].tolist() == df["customer_id"].tolist()  # "00000001" stays "00000001"
    assert "customer_id" not in ds.features


def test_one_customer_one_split_whichever_form_its_id_takes(catalog: ActionCatalog) -> None:
    df = frame(catalog)
    mixed = df.assign(customer_id=pd.Series([i if i % 2 else str(i) for i in df["customer_id"]], dtype=object))
    a = split(from_frame(df, catalog, "ints"), 0.3, 0.2, seed=4)
    b = split(from_frame(mixed, catalog, "mixed"), 0.3, 0.2, seed=4)
    for name in ("train", "valid", "test"):
        assert a[name].frame["customer_id"].tolist() == b[name].frame["customer_id"].tolist()
        assert all(type(c) is str for c in b[name].frame["customer_id"])
    assert from_frame(df, catalog, "ints").fingerprint == from_frame(mixed, catalog, "mixed").fingerprint


@pytest.mark.parametrize("bad", ["", None, "a\x00b", -3])
def test_a_bad_id_is_named_with_its_row(catalog: ActionCatalog, bad: object) -> None:
    df = frame(catalog)
    ids = np.array(df["customer_id"].tolist(), dtype=object)
    ids[7] = bad
    with pytest.raises(DataError, match=r"column 'customer_id': row 7: "):
        from_frame(df.assign(customer_id=ids), catalog, "data.parquet")
