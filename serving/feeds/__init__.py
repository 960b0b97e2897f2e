"""Market data feeds for the live loop: replays of recorded data and live websocket feeds."""
