"""What pages and the API read: results, listings at national size, cache, history, freshness."""
