from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.core.catalog import ANY_CHANNEL, ActionCatalog, load_catalog
from nextbest.errors import ConfigError


def test_shipped_catalog_is_valid(catalog: ActionCatalog) -> None:
    assert catalog.control == "no_action"
    assert set(catalog.treatments) == set(catalog.ids) - {"no_action"}
    assert catalog.costs[catalog.index["no_action"]] == 0.0
    assert catalog.discounts[catalog.index["discount_20"]] == pytest.approx(0.2)


def test_candidates_for_channel_always_include_control(catalog: ActionCatalog) -> None:
    assert catalog.for_channel("sms") == ("no_action", "sms_reminder")
    assert set(catalog.for_channel(ANY_CHANNEL)) == set(catalog.ids)
    with pytest.raises(ConfigError, match="unknown channel 'fax'"):
        catalog.for_channel("fax")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


BASE = """
channels: [email]
control: none
actions:
  - {id: none, channels: [email], category: none, value: 0, cost: 0}
  - {id: promo, channels: [email], category: promo, value: 50, cost: 0.1}
"""


def test_an_action_goes_out_on_the_request_channel_when_it_has_it(catalog: ActionCatalog) -> None:
    promo = catalog.by_id["email_promo"]
    assert catalog.delivery_channel(promo.channels[0], "email_promo") == promo.channels[0]
    assert catalog.delivery_channel(ANY_CHANNEL, "email_promo") == promo.channels[0]  # `any`: its first channel
    other = next(c for c in catalog.channels if c not in promo.channels)
    assert catalog.delivery_channel(other, "email_promo") == promo.channels[0]
    assert catalog.delivery_channel("email", "telepathy") is None


def test_valid_minimal_catalog(tmp_path: Path) -> None:
    assert load_catalog(_write(tmp_path, BASE)).ids == ("none", "promo")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE.replace("control: none", "control: nothing"), "control action 'nothing' is not in actions"),
        (BASE.replace("cost: 0.1}", "cost: 0.1, colour: red}"), "actions.1.colour: Extra inputs are not permitted"),
        (BASE.replace("cost: 0.1}", "cost: -1}"), "actions.1.cost"),
        (BASE.replace("channels: [email], category: promo", "channels: [fax], category: promo"), "unknown channel"),
        (BASE + "  - {id: promo, channels: [email], category: promo, value: 5, cost: 0}\n", "duplicate action ids"),
        ("channels: [email]\ncontrol: [", "not valid YAML"),
    ],
)
def test_invalid_catalogs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_missing_catalog_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "nope.yaml")
