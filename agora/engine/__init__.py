"""The part every cell shares: a durable request cache, a cost ledger with a hard cap, and the async runner."""
