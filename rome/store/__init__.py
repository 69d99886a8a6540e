"""Where totals are decided: the database, its models and migrations, reference data,
the tally (the write path) and the audit.
"""
