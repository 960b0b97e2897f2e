"""Instrument terms in the ONNX contract metadata: round trip, and a model for other contracts refused."""

from __future__ import annotations

import pytest

from dea.errors import ModelError
from dea.instruments import Instrument
from dea.onnx_contract import PolicyMetadata, check_compatible
from dea.risk.config import RiskConfig
from dea.risk.engine import contract_terms

LIN = Instrument(symbol="BTC", kind="perpetual", base="BTC", funding="none")
INV = Instrument(symbol="BTC", kind="perpetual", contract="inverse", base="BTC", contract_size=100, funding="none")
SPOT = Instrument(symbol="ETH", kind="spot", base="ETH")


def test_terms_round_trip_and_mismatch_is_refused():
    terms = contract_terms([LIN, SPOT], risk=RiskConfig(max_exposure=0.8))
    assert terms["ETH"] == {"kind": "spot", "contract": "linear", "contract_size": 1.0, "settlement": "USD",
                            "expiry": None, "lower": 0.0, "upper": 0.8}
    assert terms["BTC"]["lower"] == -0.8
    meta = PolicyMetadata(("f",), "h", ("BTC", "ETH"), 0.8, instrument_terms=terms)
    back = PolicyMetadata.from_props(meta.to_props())
    assert back.instrument_terms == terms
    check_compatible(back, instruments=("BTC", "ETH"), instrument_terms=terms)
    live = contract_terms([INV, SPOT], risk=RiskConfig(max_exposure=0.8))
    with pytest.raises(ModelError, match=r"instrument BTC terms differ: contract 'linear' vs live 'inverse'"):
        check_compatible(back, instrument_terms=live)
    old = {k: v for k, v in meta.to_props().items() if k != "dea.instrument_terms"}
    assert PolicyMetadata.from_props(old).instrument_terms is None  # older exports still load
    bad = {**meta.to_props(), "dea.instrument_terms": "[1]"}
    with pytest.raises(ModelError, match="instrument_terms must map"):
        PolicyMetadata.from_props(bad)
