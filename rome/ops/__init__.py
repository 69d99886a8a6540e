"""What runs Rome: the command line, the demo and its supervisor, the data folder,
Flower's login, the worker registry cache and the wipeout attempts limit.
"""
