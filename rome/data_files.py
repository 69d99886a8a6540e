"""Name everything Rome writes into its data folder, so that `rome reset` forgets none."""

# Every name Rome writes into the data folder, in this one place: whatever writes
# one takes its name from here, so reset cannot forget it.
SQLITE = "rome.sqlite3"  # and its -wal, -shm and -journal beside it
BROKER = "broker"  # the embedded broker's folder
BEAT_SCHEDULE = "celerybeat-schedule"  # beat's shelve adds .dat, .dir, .bak or .db
FLOWER_LOGIN = "flower-login"
SESSION_KEY = "web-session-key"  # written whole as .web-session-key.<pid>.<hex> first
LOCK = "demo.lock"
BENCH_LOG = "bench-{}.log"  # one per process `rome bench` starts
MESSAGE_KEYS = "message-keys"  # written whole as .message-keys.<pid>.<hex> first
ARCHIVE = "archive"  # every fetched body, content-addressed (ROME_ARCHIVE_DIR moves it)
PUBLIC = "public"  # the published static files (ROME_PUBLISH_DIR moves it)
# Everything Rome writes there, and nothing else: a mistaken ROME_DATA_DIR (a home
# folder, say) loses only files Rome would have made.
PATTERNS = (SQLITE, f"{SQLITE}-*", BROKER, f"{BEAT_SCHEDULE}*", FLOWER_LOGIN, SESSION_KEY,
            f".{SESSION_KEY}.*", MESSAGE_KEYS, f".{MESSAGE_KEYS}.*", LOCK, BENCH_LOG.format("*"),
            ARCHIVE, PUBLIC)
