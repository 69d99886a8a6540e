"""What pages and the API read: results, the results cache, history and freshness."""
