"""Names of the real captures the order-book tests read (under shared/data/orderbook/binance_ws_2024)."""

USDM = "usdm_btcusdt_20240808.gz"
SPOT = "spot_btcusdt_20240808.gz"
COINM = "cm_btcusd_perp_20240808.gz"
COINM_NEXT = "cm_btcusd_perp_20240809.gz"
HYPERLIQUID = "hyperliquid_btcusd_20250126.gz"
