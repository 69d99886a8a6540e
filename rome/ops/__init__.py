"""What runs Rome: the demo and its supervisor, the data folder, Flower's login, the worker
registry cache, the wipeout attempts limit, and the one seam to the Celery side."""
